// The Subscribe server streams over Connect (fetch): live delivery of what
// another account does, resume with sinceId after a stop, and the helper's
// own reconnect after a dropped connection, each without a missed or a
// repeated event.
import { test } from "node:test";
import assert from "node:assert/strict";

import { ActivityType, createFlockClient, NotificationType } from "@flock-social/client";

import { accounts, baseUrl, collector, sleep } from "../test-support/env.mjs";

const skip = !baseUrl;
const { sam, tom, uma, ivy } = accounts;

async function login(account, options = {}) {
  const client = createFlockClient({ baseUrl, ...options });
  await client.login(account.username, account.password);
  return client;
}

/** Ids grow with time and each event comes once. */
function assertIncreasing(events) {
  for (let i = 1; i < events.length; i++) {
    assert.ok(events[i - 1].id < events[i].id, `event ${i} (${events[i].id}) is not after ${events[i - 1].id}`);
  }
}

test("notifications: live delivery, then a resume delivers exactly the missed ones in order", { skip, timeout: 60_000 }, async () => {
  const [samC, tomC, umaC] = await Promise.all([login(sam), login(tom), login(uma)]);

  // 1. Live: tom follows sam while sam listens.
  const live = collector();
  const stop1 = new AbortController();
  const first = samC.subscribeNotifications({ signal: stop1.signal, onEvent: live.onEvent, onOpen: live.onOpen });
  await live.opened(); // from here on nothing is missed
  await tomC.users.follow({ userId: sam.id });
  await live.until(1);
  const [follow] = live.events;
  assert.equal(follow.type, NotificationType.FOLLOW);
  assert.equal(follow.actor.id, tom.id);
  stop1.abort();
  const lastId = await first; // resolves with the last delivered id
  assert.equal(lastId, follow.id);
  assert.equal(live.events.length, 1);

  // 2. While sam is away: a like and a comment by tom, a follow by uma.
  const { post } = await samC.posts.createPost({ content: "resume me #sdk" });
  await tomC.posts.likePost({ postId: post.id });
  const { comment } = await tomC.posts.createComment({ postId: post.id, content: "nice" });
  await umaC.users.follow({ userId: sam.id });

  // 3. Resume after the last id: the three missed ones first, oldest first,
  //    then live ones; nothing from before, nothing twice.
  const resumed = collector();
  const stop2 = new AbortController();
  const second = samC.subscribeNotifications({ sinceId: lastId, signal: stop2.signal, onEvent: resumed.onEvent, onOpen: resumed.onOpen });
  await resumed.until(3);
  assert.deepEqual(
    resumed.events.map((n) => [n.type, n.actor.id, n.postId, n.commentId]),
    [
      [NotificationType.LIKE, tom.id, post.id, ""],
      [NotificationType.COMMENT, tom.id, post.id, comment.id],
      [NotificationType.FOLLOW, uma.id, "", ""],
    ],
  );
  await resumed.opened();
  await umaC.posts.likePost({ postId: post.id }); // live, after the backlog
  await resumed.until(4);
  await sleep(300); // room for a stray duplicate to show up
  stop2.abort();
  assert.equal(await second, resumed.events[3].id);
  assert.equal(resumed.events.length, 4);
  assert.deepEqual([resumed.events[3].type, resumed.events[3].actor.id], [NotificationType.LIKE, uma.id]);
  assertIncreasing([follow, ...resumed.events]);

  // The same events, by the list: everything after lastId, newest first.
  const { notifications } = await samC.notifications.listNotifications({ pageSize: 10 });
  assert.deepEqual(
    notifications.filter((n) => n.id > lastId).map((n) => n.id).reverse(),
    resumed.events.map((n) => n.id),
  );
});

/**
 * A fetch whose Subscribe connections the test can cut, and whose next
 * Subscribe connection waits until the test lets it through. It records the
 * sinceId each Subscribe request carried.
 */
function cuttableFetch() {
  const sinceIds = [];
  let cutCurrent = () => {};
  let gate = null;
  const f = async (input, init) => {
    const url = typeof input === "string" ? input : input.url;
    if (!url.endsWith("/Subscribe")) return fetch(input, init);
    // A Connect streaming request: a 5-byte envelope prefix, then JSON.
    sinceIds.push(JSON.parse(new TextDecoder().decode(init.body.subarray(5))).sinceId ?? "");
    if (gate) await gate.promise;
    const res = await fetch(input, init);
    const reader = res.body.getReader();
    let controller;
    const body = new ReadableStream({
      start(c) {
        controller = c;
      },
      async pull(c) {
        try {
          const { done, value } = await reader.read();
          if (done) c.close();
          else c.enqueue(value);
        } catch (err) {
          c.error(err);
        }
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    });
    cutCurrent = () => {
      controller.error(new TypeError("connection reset (cut by the test)"));
      reader.cancel().catch(() => {});
    };
    return new Response(body, { status: res.status, headers: res.headers });
  };
  return {
    fetch: f,
    sinceIds,
    /** Cuts the open Subscribe connection; the next one waits for release(). */
    cut() {
      let release;
      gate = { promise: new Promise((r) => (release = r)) };
      gate.release = release;
      cutCurrent();
    },
    release() {
      const g = gate;
      gate = null;
      g?.release();
    },
  };
}

test("activity: after a dropped connection the helper reconnects from the last id by itself", { skip, timeout: 60_000 }, async () => {
  const net = cuttableFetch();
  const samC = await login(sam, { fetch: net.fetch });
  const got = collector();
  const drops = [];
  const stop = new AbortController();
  const done = samC.subscribeActivity({
    signal: stop.signal,
    onEvent: got.onEvent,
    onOpen: got.onOpen,
    onDisconnect: (err, retryInMs) => drops.push({ err, retryInMs }),
    backoff: { initialMs: 20, maxMs: 100 },
  });
  await got.opened(1);
  await samC.users.follow({ userId: tom.id });
  await got.until(1);

  // The connection drops; while it is down (the reconnect is held back)
  // sam does two more things.
  net.cut();
  await samC.users.unfollow({ userId: tom.id });
  await samC.users.follow({ userId: uma.id });
  await sleep(200); // the helper has noticed, and is waiting on the held-back connection
  assert.equal(drops.length, 1);
  assert.ok(drops[0].retryInMs >= 10 && drops[0].retryInMs <= 20, `retry in ${drops[0].retryInMs} ms`);
  assert.equal(got.events.length, 1);
  net.release();

  await got.opened(2);
  await got.until(3);
  const { post } = await samC.posts.createPost({ content: "after the reconnect" }); // live again
  await got.until(4);
  await sleep(300);
  stop.abort();
  assert.equal(await done, got.events[3].id);

  assert.deepEqual(
    got.events.map((a) => [a.type, a.targetUserId, a.postId]),
    [
      [ActivityType.USER_FOLLOWED, tom.id, ""],
      [ActivityType.USER_UNFOLLOWED, tom.id, ""],
      [ActivityType.USER_FOLLOWED, uma.id, ""],
      [ActivityType.POST_CREATED, "", post.id],
    ],
  );
  assertIncreasing(got.events);
  // The second connection resumed after the last event the first delivered.
  assert.deepEqual(net.sinceIds, ["", got.events[0].id]);

  // Once stopped it stays stopped: no further connection.
  await sleep(300);
  assert.equal(net.sinceIds.length, 2);
});

test("notifications: a connection cut before the first event resumes from where it started, and a refused one is not open", { skip, timeout: 60_000 }, async () => {
  const net = cuttableFetch();
  // A token the server refuses: the first connection is answered with an
  // error (over Connect, a 200 whose body is the error), which is no open
  // stream; the client refreshes and connects again.
  const ivyC = createFlockClient({ baseUrl, fetch: net.fetch, accessToken: "not-a-jwt", refreshToken: ivy.refreshToken });
  const tomC = await login(tom);
  const got = collector();
  const stop = new AbortController();
  const done = ivyC.subscribeNotifications({
    signal: stop.signal,
    onEvent: got.onEvent,
    onOpen: got.onOpen,
    backoff: { initialMs: 20, maxMs: 100 },
  });
  // A failed assertion must not leave the subscription reconnecting.
  try {
    await got.opened(1);
    assert.equal(net.sinceIds.length, 2, "onOpen was called before the connection that listens (for the refused one?)");

    // Cut before any event: tom's follow happens while ivy is away.
    net.cut();
    await tomC.users.follow({ userId: ivy.id });
    await sleep(200);
    net.release();
    await got.until(1);
    assert.equal(got.events[0].type, NotificationType.FOLLOW);
    assert.equal(got.events[0].actor.id, tom.id);
    await sleep(300);
  } finally {
    stop.abort();
    net.release();
  }
  assert.equal(await done, got.events[0].id);
  assert.equal(got.events.length, 1);
  assert.equal(got.opens, 2, "onOpen calls: the first connection that listened and the one after the cut");
  // The refused connection and the first open one carried no sinceId; the
  // one after the cut carried the position the open one was given.
  assert.equal(net.sinceIds.length, 3, `connections: ${JSON.stringify(net.sinceIds)}`);
  assert.deepEqual(net.sinceIds.slice(0, 2), ["", ""]);
  assert.match(net.sinceIds[2], /^[0-9A-Z]{26}$/);
  assert.ok(net.sinceIds[2] < got.events[0].id);
});
