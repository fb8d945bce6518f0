// shareAcrossTabs where Web Locks exist (every current browser): the lock
// decides which tab refreshes. Node 20 has no navigator.locks, so this file
// (its own process under node --test) installs a minimal one: an exclusive
// lock per name, granted in request order.
import { test } from "node:test";
import assert from "node:assert/strict";

import { createFlockClient } from "@flock-social/client";

import { accounts, baseUrl, recordingFetch } from "../test-support/env.mjs";

const skip = !baseUrl;
const { tabby } = accounts;

const requests = [];
const held = new Map();
const locks = {
  request(name, callback) {
    requests.push(name);
    const run = (held.get(name) ?? Promise.resolve()).then(() => callback());
    held.set(
      name,
      run.then(
        () => {},
        () => {},
      ),
    );
    return run;
  },
};
if (globalThis.navigator?.locks === undefined) {
  Object.defineProperty(globalThis, "navigator", { value: { ...globalThis.navigator, locks }, configurable: true });
}

test("with Web Locks, two tabs refreshing at once send one RefreshToken and share its pair", { skip, timeout: 30_000 }, async () => {
  const f = recordingFetch();
  const shareAcrossTabs = `flock-test-${Math.random().toString(36).slice(2)}`;
  const a = createFlockClient({ baseUrl, fetch: f, shareAcrossTabs });
  await a.login(tabby.username, tabby.password);
  const b = createFlockClient({ baseUrl, fetch: f, shareAcrossTabs, ...a.tokens() });
  try {
    const [ta, tb] = await Promise.all([a.refresh(), b.refresh()]);
    if (globalThis.navigator.locks === locks) {
      assert.deepEqual(requests, [shareAcrossTabs, shareAcrossTabs], "each tab asked for the lock");
    }
    assert.equal(f.count("/RefreshToken"), 1);
    assert.deepEqual(ta, tb);
    assert.deepEqual(a.tokens(), b.tokens());
    for (const c of [a, b]) assert.equal((await c.users.getMe({})).user.id, tabby.id);
  } finally {
    a.close();
    b.close();
  }
});
