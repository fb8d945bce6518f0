// Runs against a live Flock server: FLOCK_URL, FLOCK_TOKEN (an access
// token), FLOCK_VIDEO (a path to a small video file) and FLOCK_MAX_BYTES
// (the server's upload limit) come from the Go test that starts it
// (server/ts_client_test.go).
import { test } from "node:test";
import assert from "node:assert/strict";
import { openAsBlob } from "node:fs";

import { uploadVideo, waitVideo, getVideo, FlockError } from "../src/index.js";

const baseUrl = process.env.FLOCK_URL;
const accessToken = process.env.FLOCK_TOKEN;

test("uploadVideo streams a file and waitVideo sees it ready", { skip: !baseUrl }, async () => {
  const file = await openAsBlob(process.env.FLOCK_VIDEO);
  const video = await uploadVideo({ baseUrl, accessToken, file, filename: "clip.mp4" });
  assert.equal(video.status, "VIDEO_STATUS_PROCESSING");
  const ready = await waitVideo({ baseUrl, accessToken, videoId: video.id, intervalMs: 50, signal: AbortSignal.timeout(60_000) });
  assert.equal(ready.status, "VIDEO_STATUS_READY", ready.failureReason);
  assert.ok(ready.durationSeconds > 0);
  // The playback URL needs no Authorization header and honours Range.
  const res = await fetch(ready.playbackUrl, { headers: { Range: "bytes=0-9" } });
  assert.equal(res.status, 206);
  assert.equal((await res.arrayBuffer()).byteLength, 10);
});

test("errors carry the status and the code", { skip: !baseUrl }, async () => {
  // A real video's start (it is sniffed first), then padding past the limit.
  const tooBig = new Blob([await openAsBlob(process.env.FLOCK_VIDEO), new Uint8Array(Number(process.env.FLOCK_MAX_BYTES))]);
  await assert.rejects(uploadVideo({ baseUrl, accessToken, file: tooBig }), (err) => {
    assert.ok(err instanceof FlockError);
    assert.equal(err.status, 413);
    assert.equal(err.code, "resource_exhausted");
    return true;
  });
  await assert.rejects(uploadVideo({ baseUrl, accessToken, file: new Blob(["plain text, not a video"]) }),
    (err) => err.status === 400 && err.code === "invalid_argument" && /not a video/.test(err.message));
  await assert.rejects(uploadVideo({ baseUrl, accessToken: "nope", file: new Blob(["x"]) }),
    (err) => err.status === 401 && err.code === "unauthenticated");
  await assert.rejects(getVideo({ baseUrl, accessToken, videoId: "01KCNOSUCHVIDEO0000000000" }),
    (err) => err.status === 404 && err.code === "not_found");
});
