// Automatic refresh against a server whose access tokens live 2 seconds.
// Refresh tokens rotate and each works once, so concurrent failures must
// share one RefreshToken call: a second one with the same refresh token would
// be taken for theft and end the session.
import { test } from "node:test";
import assert from "node:assert/strict";
import { openAsBlob } from "node:fs";

import { Code, ConnectError, createFlockClient, VideoStatus } from "@flock-social/client";

import { accessTtlMs, accounts, recordingFetch, shortUrl, sleep, videoPath } from "../test-support/env.mjs";

const skip = !shortUrl;
const { dave, erin } = accounts;

/** Waits until the client's access token has expired (its JWT `exp`, in seconds, has passed). */
async function expire(client) {
  const { exp } = JSON.parse(Buffer.from(client.tokens().accessToken.split(".")[1], "base64url").toString());
  assert.ok(exp * 1000 - Date.now() <= accessTtlMs, "the server's access tokens are short-lived");
  const left = exp * 1000 + 100 - Date.now();
  if (left > 0) await sleep(left);
}

test("five concurrent calls after expiry share one refresh, then succeed", { skip, timeout: 30_000 }, async () => {
  const f = recordingFetch();
  const seen = [];
  const client = createFlockClient({ baseUrl: shortUrl, fetch: f, onTokens: (t) => seen.push(t) });
  await client.login(dave.username, dave.password);
  const before = client.tokens();
  await expire(client);

  const results = await Promise.all([
    client.users.getMe({}),
    client.users.getUser({ userId: dave.id }),
    client.notifications.listNotifications({}),
    client.activity.listActivity({}),
    client.posts.listFeed({}),
  ]);
  assert.equal(results[0].user.id, dave.id);
  assert.equal(results[1].user.id, dave.id);

  // Each call was refused once (the token had expired), one refresh served
  // them all, and each was retried once.
  const unary = ["/GetMe", "/GetUser", "/ListNotifications", "/ListActivity", "/ListFeed"];
  for (const p of unary) {
    assert.equal(f.count(p, 401), 1, `${p} refused once (${JSON.stringify(f.calls)})`);
    assert.equal(f.count(p, 200), 1, `${p} retried once`);
  }
  assert.equal(f.count("/RefreshToken"), 1);
  assert.equal(seen.length, 2); // login, then the one refresh
  const after = client.tokens();
  assert.deepEqual(seen[1], after);
  assert.notEqual(after.accessToken, before.accessToken);
  assert.notEqual(after.refreshToken, before.refreshToken);
});

test("an upload after expiry refreshes and sends the file again", { skip: skip || !videoPath, timeout: 30_000 }, async () => {
  const f = recordingFetch();
  const client = createFlockClient({ baseUrl: shortUrl, fetch: f });
  await client.login(dave.username, dave.password);
  await expire(client);
  const video = await client.uploadVideo(await openAsBlob(videoPath), "clip.mp4");
  assert.equal(video.status, VideoStatus.PROCESSING);
  assert.equal(f.count("/api/posts/videos/", 401), 1);
  assert.equal(f.count("/api/posts/videos/", 202), 1);
  assert.equal(f.count("/RefreshToken"), 1);
});

test("explicit refreshes share one request too", { skip, timeout: 30_000 }, async () => {
  const f = recordingFetch();
  const client = createFlockClient({ baseUrl: shortUrl, fetch: f });
  await client.login(erin.username, erin.password);
  const [a, b, c] = await Promise.all([client.refresh(), client.refresh(), client.refresh()]);
  assert.equal(f.count("/RefreshToken"), 1);
  assert.deepEqual(a, b);
  assert.deepEqual(b, c);
  assert.deepEqual(client.tokens(), a);
});

test("a client given only a refresh token refreshes before its first call", { skip, timeout: 30_000 }, async () => {
  const first = createFlockClient({ baseUrl: shortUrl });
  await first.login(erin.username, erin.password);
  const seen = [];
  const client = createFlockClient({ baseUrl: shortUrl, refreshToken: first.tokens().refreshToken, onTokens: (t) => seen.push(t) });
  assert.equal((await client.users.getMe({})).user.id, erin.id);
  assert.equal(seen.length, 1);
  assert.ok(client.tokens().accessToken);
});

test("reusing a rotated refresh token ends the whole session", { skip, timeout: 30_000 }, async () => {
  const seen = [];
  const client = createFlockClient({ baseUrl: shortUrl, onTokens: (t) => seen.push(t) });
  await client.login(erin.username, erin.password);
  const old = client.tokens().refreshToken;
  await client.refresh(); // rotates: `old` is now used

  // Someone else (a second tab with a stale copy, or a thief) presents it.
  const replay = createFlockClient({ baseUrl: shortUrl, refreshToken: old });
  await assert.rejects(replay.users.getMe({}), (err) => err instanceof ConnectError && err.code === Code.Unauthenticated);
  assert.equal(replay.tokens(), null);

  // The server revoked the session: the rightful client's tokens stop
  // working, its own refresh is refused, and it forgets them.
  await assert.rejects(client.users.getMe({}), (err) => err instanceof ConnectError && err.code === Code.Unauthenticated);
  assert.equal(client.tokens(), null);
  assert.equal(seen.at(-1), null);
});
