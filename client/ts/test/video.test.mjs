// Video upload over plain HTTP (the same streamed multipart POST a browser
// makes), processing, playback, and the FlockError of each refusal. FLOCK_VIDEO
// is a small mp4 and FLOCK_MAX_BYTES the server's upload limit.
import { test } from "node:test";
import assert from "node:assert/strict";
import { openAsBlob } from "node:fs";

import { Code, createFlockClient, FlockError, getVideo, uploadVideo, VideoStatus, waitVideo } from "@flock-social/client";

import { accounts, baseUrl, maxBytes, videoPath } from "../test-support/env.mjs";

const skip = !baseUrl || !videoPath;
const accessToken = process.env.FLOCK_TOKEN;
const { vic } = accounts;

/** The playback URL needs no Authorization header and honours Range. */
async function assertPlayable(video) {
  const res = await fetch(video.playbackUrl, { headers: { Range: "bytes=0-9" } });
  assert.equal(res.status, 206);
  assert.match(res.headers.get("Content-Range"), /^bytes 0-9\//);
  assert.equal((await res.arrayBuffer()).byteLength, 10);
}

test("the client uploads a file as a stream, waits for it and it plays", { skip, timeout: 90_000 }, async () => {
  const client = createFlockClient({ baseUrl });
  await client.login(vic.username, vic.password);
  const video = await client.uploadVideo(await openAsBlob(videoPath), "clip.mp4");
  assert.equal(video.status, VideoStatus.PROCESSING);
  assert.ok(video.id);

  const ready = await client.waitVideo(video.id, { intervalMs: 50, signal: AbortSignal.timeout(60_000) });
  assert.equal(ready.status, VideoStatus.READY, ready.failureReason);
  assert.ok(ready.durationSeconds > 0);
  assert.equal(ready.width, 160);
  assert.ok(ready.sizeBytes > 0n); // int64: a bigint
  await assertPlayable(ready);

  // It goes on a post like any other field.
  const { post } = await client.posts.createPost({ content: "watch this", videoId: video.id });
  assert.equal(post.video.id, video.id);
});

test("the standalone helpers need only a base URL and an access token", { skip, timeout: 90_000 }, async () => {
  const file = await openAsBlob(videoPath);
  const video = await uploadVideo({ baseUrl, accessToken, file, filename: "clip.mp4" });
  assert.equal(video.status, VideoStatus.PROCESSING);
  const ready = await waitVideo({ baseUrl, accessToken, videoId: video.id, intervalMs: 50, signal: AbortSignal.timeout(60_000) });
  assert.equal(ready.status, VideoStatus.READY, ready.failureReason);
  assert.deepEqual(await getVideo({ baseUrl, accessToken, videoId: video.id }), ready);
  await assertPlayable(ready);
});

test("refusals are FlockErrors with the status and the code", { skip, timeout: 60_000 }, async () => {
  /** Asserts a FlockError of status and code name. */
  const refused = (status, code, message) => (err) => {
    assert.ok(err instanceof FlockError, `want a FlockError, got ${err}`);
    assert.equal(err.status, status);
    assert.equal(err.code, code);
    assert.equal(Code[err.connectCode], code.replace(/(^|_)(.)/g, (_, __, c) => c.toUpperCase()));
    if (message) assert.match(err.message, message);
    return true;
  };
  // A real video's start (it is sniffed first), then padding past the limit.
  const tooBig = new Blob([await openAsBlob(videoPath), new Uint8Array(maxBytes)]);
  await assert.rejects(uploadVideo({ baseUrl, accessToken, file: tooBig }), refused(413, "resource_exhausted"));
  await assert.rejects(
    uploadVideo({ baseUrl, accessToken, file: new Blob(["plain text, not a video"]) }),
    refused(400, "invalid_argument", /not a video/),
  );
  await assert.rejects(uploadVideo({ baseUrl, accessToken: "nope", file: new Blob(["x"]) }), refused(401, "unauthenticated"));
  await assert.rejects(
    getVideo({ baseUrl, accessToken, videoId: "01KCNOSUCHVIDEO0000000000" }),
    refused(404, "not_found"),
  );
  // Through the client, the same upload refusal; the RPC read is a ConnectError.
  const client = createFlockClient({ baseUrl, accessToken });
  await assert.rejects(client.uploadVideo(new Blob(["not a video either"])), refused(400, "invalid_argument"));
  await assert.rejects(client.waitVideo("01KCNOSUCHVIDEO0000000000"), (err) => err.code === Code.NotFound);
});
