// Tabs that share one session (security.md property 8). Each "tab" is a
// client in this process; those given one shareAcrossTabs name talk over a
// BroadcastChannel as browser tabs of one origin do. The server has the
// default refresh reuse grace (30 s).
import { test } from "node:test";
import assert from "node:assert/strict";

import { createFlockClient } from "@flock-social/client";

import { accounts, baseUrl, recordingFetch } from "../test-support/env.mjs";

const skip = !baseUrl;
const { tabby, tilda } = accounts;

/** A channel name of its own for each test. */
const channelName = () => `flock-test-${Math.random().toString(36).slice(2)}`;

/** A tab: a client with onTokens recorded, and a promise of its next onTokens. */
function tab(options) {
  const seen = [];
  let waiting = [];
  const client = createFlockClient({
    baseUrl,
    ...options,
    onTokens: (t) => {
      seen.push(t);
      for (const w of waiting) w(t);
      waiting = [];
    },
  });
  client.seen = seen;
  // The SDK unrefs its channels (they must not keep a Node process
  // alive), so a message in flight does not either: a timer does, while
  // the test waits for one (and names what never came).
  client.nextTokens = () =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no onTokens within 10 s")), 10_000);
      waiting.push((t) => {
        clearTimeout(timer);
        resolve(t);
      });
    });
  return client;
}

async function signedIn(client, account) {
  const { user } = await client.users.getMe({});
  assert.equal(user.id, account.id);
}

test("two tabs sharing a channel refresh at once: one RefreshToken, both adopt the pair and stay signed in", { skip, timeout: 30_000 }, async () => {
  const f = recordingFetch();
  const shareAcrossTabs = channelName();
  const a = tab({ fetch: f, shareAcrossTabs });
  await a.login(tabby.username, tabby.password);
  const b = tab({ fetch: f, shareAcrossTabs, ...a.tokens() });
  try {
    const [ta, tb] = await Promise.all([a.refresh(), b.refresh()]);
    assert.equal(f.count("/RefreshToken"), 1, "one tab refreshed, the other adopted its pair");
    assert.deepEqual(ta, tb);
    assert.deepEqual(a.tokens(), ta);
    assert.deepEqual(b.tokens(), ta);
    // Each tab told its app about the new pair once.
    assert.deepEqual(a.seen.at(-1), ta);
    assert.deepEqual(b.seen, [ta]);
    await signedIn(a, tabby);
    await signedIn(b, tabby);
  } finally {
    a.close();
    b.close();
  }
});

test("an idle tab adopts the pair another tab refreshed, so its own next refresh keeps the session", { skip, timeout: 30_000 }, async () => {
  const f = recordingFetch();
  const shareAcrossTabs = channelName();
  const a = tab({ fetch: f, shareAcrossTabs });
  await a.login(tilda.username, tilda.password);
  const b = tab({ fetch: f, shareAcrossTabs, ...a.tokens() });
  try {
    const adopted = b.nextTokens();
    const fresh = await a.refresh();
    assert.deepEqual(await adopted, fresh);
    assert.deepEqual(b.tokens(), fresh);

    // Later the other tab refreshes: with the adopted token, not the rotated one.
    const backToA = a.nextTokens();
    const again = await b.refresh();
    assert.deepEqual(await backToA, again);
    assert.equal(f.count("/RefreshToken"), 2);
    await signedIn(a, tilda);
    await signedIn(b, tilda);
  } finally {
    a.close();
    b.close();
  }
});

test("logging out in one tab signs the other out", { skip, timeout: 30_000 }, async () => {
  const shareAcrossTabs = channelName();
  const a = tab({ shareAcrossTabs });
  await a.login(tabby.username, tabby.password);
  const b = tab({ shareAcrossTabs, ...a.tokens() });
  try {
    const ended = b.nextTokens();
    await a.logout();
    assert.equal(await ended, null);
    assert.equal(b.tokens(), null);
  } finally {
    a.close();
    b.close();
  }
});

test("without a channel, two tabs refreshing one token at once both stay signed in (the server's reuse grace)", { skip, timeout: 30_000 }, async () => {
  const f = recordingFetch();
  const a = tab({ fetch: f });
  await a.login(tilda.username, tilda.password);
  const b = tab({ fetch: f, ...a.tokens() });

  const [ta, tb] = await Promise.all([a.refresh(), b.refresh()]);
  assert.equal(f.count("/RefreshToken"), 2);
  assert.notEqual(ta.refreshToken, tb.refreshToken, "each tab got a pair of its own");
  await signedIn(a, tilda);
  await signedIn(b, tilda);
  // Each goes on rotating its own refresh token.
  await Promise.all([a.refresh(), b.refresh()]);
  await signedIn(a, tilda);
  await signedIn(b, tilda);
});
