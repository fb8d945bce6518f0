// Managing an account from the SDK: signing out other sessions, and the
// data export, which is plain HTTP.
import { test } from "node:test";
import assert from "node:assert/strict";

import { Code, ConnectError, createFlockClient, downloadExport, exportFilename, FlockError } from "@flock-social/client";

import { accounts, baseUrl } from "../test-support/env.mjs";

const skip = !baseUrl;
const { ada } = accounts;

test("signOutOtherSessions ends the other sessions and keeps this one", { skip, timeout: 30_000 }, async () => {
  const laptop = createFlockClient({ baseUrl });
  const phone = createFlockClient({ baseUrl });
  await laptop.login(ada.username, ada.password);
  await phone.login(ada.username, ada.password);
  assert.ok((await laptop.users.listSessions({})).sessions.length >= 3); // ada's first login too

  const ended = await laptop.signOutOtherSessions();
  assert.ok(ended >= 2, `ended ${ended} sessions, want the phone's and the first login's`);
  const { sessions } = await laptop.users.listSessions({});
  assert.equal(sessions.length, 1);
  assert.equal(sessions[0].current, true);
  assert.equal((await laptop.users.getMe({})).user.id, ada.id);

  // The phone's refresh token ended with its session: the call fails and
  // the client forgets its tokens.
  await assert.rejects(phone.users.getMe({}), (err) => err instanceof ConnectError && err.code === Code.Unauthenticated);
});

test("downloadExport streams the account's zip; without a valid token it is a FlockError", { skip, timeout: 30_000 }, async () => {
  const client = createFlockClient({ baseUrl });
  await client.login(ada.username, ada.password);
  const res = await client.downloadExport();
  assert.equal(res.headers.get("Content-Type"), "application/zip");
  assert.match(exportFilename(res), new RegExp(`^flock-export-${ada.username}-.*\\.zip$`));
  const bytes = new Uint8Array(await res.arrayBuffer());
  assert.deepEqual([...bytes.subarray(0, 4)], [0x50, 0x4b, 0x03, 0x04]); // "PK\3\4": a zip
  assert.ok(new TextDecoder().decode(bytes).includes("manifest.json"));

  await assert.rejects(downloadExport({ baseUrl, accessToken: "not-a-token" }), (err) => {
    assert.ok(err instanceof FlockError);
    assert.equal(err.status, 401);
    assert.equal(err.connectCode, Code.Unauthenticated);
    return true;
  });
});
