// Login, calls with the token, logout, and how failures reach the caller:
// every RPC failure is a ConnectError with the server's code.
import { test } from "node:test";
import assert from "node:assert/strict";

import { Code, ConnectError, createFlockClient, fieldViolations, UserRole } from "@flock-social/client";

import { accounts, baseUrl, recordingFetch } from "../test-support/env.mjs";

const skip = !baseUrl;
const { alice, bob } = accounts;

/** Asserts that promise rejects with a ConnectError of code; returns it. */
async function rejectsWith(promise, code) {
  let caught;
  await assert.rejects(promise, (err) => {
    caught = err;
    assert.ok(err instanceof ConnectError, `want a ConnectError, got ${err}`);
    assert.equal(err.code, code, `want ${Code[code]}, got ${Code[err.code]}: ${err.message}`);
    return true;
  });
  return caught;
}

test("login keeps the tokens and calls carry them", { skip, timeout: 30_000 }, async () => {
  const seen = [];
  const client = createFlockClient({ baseUrl, onTokens: (t) => seen.push(t) });
  assert.equal(client.tokens(), null);

  const res = await client.login(alice.username.toUpperCase(), alice.password);
  assert.equal(res.user.id, alice.id);
  assert.equal(res.tokenType, "Bearer");
  assert.deepEqual(client.tokens(), { accessToken: res.accessToken, refreshToken: res.refreshToken });
  assert.deepEqual(seen, [{ accessToken: res.accessToken, refreshToken: res.refreshToken }]);

  const { user } = await client.users.getMe({});
  assert.equal(user.id, alice.id);
  assert.equal(user.email, alice.email); // a private field: GetMe ran as alice
  assert.equal(user.role, UserRole.MEMBER);

  // Login by email works too.
  const byEmail = createFlockClient({ baseUrl });
  await byEmail.login(alice.email, alice.password);
  assert.equal((await byEmail.users.getMe({})).user.username, alice.username);
});

test("a client can start from stored tokens", { skip, timeout: 30_000 }, async () => {
  const client = createFlockClient({ baseUrl, accessToken: bob.accessToken, refreshToken: bob.refreshToken });
  const { user } = await client.users.getUser({ userId: alice.id });
  assert.equal(user.username, alice.username);
  // Another user's profile carries no private fields at all (P26): not even empty.
  assert.equal(user.email, undefined);
  assert.equal(user.emailVerified, undefined);
  assert.equal(user.role, undefined);
});

test("logout ends the session: its token and its open stream stop working", { skip, timeout: 30_000 }, async () => {
  const seen = [];
  const client = createFlockClient({ baseUrl, onTokens: (t) => seen.push(t) });
  await client.login(alice.username, alice.password);
  const { accessToken } = client.tokens();

  let opened;
  const open = new Promise((resolve) => (opened = resolve));
  const stream = client.subscribeNotifications({ signal: AbortSignal.timeout(20_000), onEvent() {}, onOpen: opened });
  await open;

  // The stream ends with the session, and is not retried: nothing can renew it.
  const ended = rejectsWith(stream, Code.Unauthenticated);
  await client.logout();
  assert.equal(client.tokens(), null);
  assert.equal(seen.at(-1), null);
  await ended;
  // The access token handed out before stops working at once.
  const stale = createFlockClient({ baseUrl, accessToken });
  await rejectsWith(stale.users.getMe({}), Code.Unauthenticated);
});

test("failures are ConnectErrors with the server's code", { skip, timeout: 30_000 }, async () => {
  const f = recordingFetch();
  const anonymous = createFlockClient({ baseUrl, fetch: f });
  const err = await rejectsWith(anonymous.users.getMe({}), Code.Unauthenticated);
  assert.match(err.rawMessage, /missing access token/);
  // Without a refresh token nothing is tried before giving up.
  assert.equal(f.count("/RefreshToken"), 0);

  await rejectsWith(anonymous.login(alice.username, "not the password"), Code.Unauthenticated);
  assert.equal(anonymous.tokens(), null);

  const client = createFlockClient({ baseUrl, fetch: f });
  await client.login(bob.username, bob.password);
  await rejectsWith(client.users.getUser({ userId: "01KCNOSUCHUSER000000000000" }), Code.NotFound);
  await rejectsWith(client.users.follow({ userId: bob.id }), Code.InvalidArgument); // yourself
  const empty = await rejectsWith(client.posts.createPost({ content: "" }), Code.InvalidArgument);
  // The fields a refusal names, by their proto names: the proto's rules...
  assert.deepEqual(fieldViolations(empty).map((v) => v.field), ["content"]);
  assert.ok(fieldViolations(empty)[0].description.length > 0);
  // ...and the domain's own (a two-word field), and nothing for other errors.
  const weak = await rejectsWith(client.users.changePassword({ currentPassword: "not the password", newPassword: "short" }), Code.InvalidArgument);
  assert.deepEqual(fieldViolations(weak).map((v) => v.field), ["new_password"]);
  assert.deepEqual(fieldViolations(new Error("not a ConnectError")), []);
  await rejectsWith(client.moderation.listReports({}), Code.PermissionDenied); // staff only
  // A stream refused for good rejects instead of reconnecting forever.
  await rejectsWith(
    client.subscribeNotifications({ sinceId: "not-an-id", signal: AbortSignal.timeout(10_000), onEvent() {} }),
    Code.InvalidArgument,
  );
  // Login failures never trigger a refresh, even with a refresh token held.
  await rejectsWith(client.login(bob.username, "wrong password"), Code.Unauthenticated);
  assert.equal(f.count("/RefreshToken"), 0);
});

test("a refused refresh token forgets the tokens and reports it", { skip, timeout: 30_000 }, async () => {
  const seen = [];
  const f = recordingFetch();
  const client = createFlockClient({ baseUrl, fetch: f, accessToken: "not-a-jwt", refreshToken: "not-a-refresh-token", onTokens: (t) => seen.push(t) });
  await rejectsWith(client.users.getMe({}), Code.Unauthenticated);
  assert.equal(f.count("/RefreshToken"), 1);
  assert.equal(client.tokens(), null);
  assert.deepEqual(seen, [null]);
});
