// enumName and the reverse mapping of the generated enums: how an app shows
// an enum field by name (docs/sdk-ts.md#enums). Needs no server.
import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import {
  enumName,
  NotificationType,
  NotificationTypeSchema,
  VideoSchema,
  VideoStatus,
  VideoStatusSchema,
  Visibility,
  VisibilitySchema,
} from "@flock-social/client";

test("enumName gives the proto name of a value, as the REST API and the Go SDK print it", () => {
  const video = create(VideoSchema, { status: VideoStatus.READY });
  assert.equal(String(video.status), "2"); // what printing the field shows
  assert.equal(enumName(VideoStatusSchema, video.status), "VIDEO_STATUS_READY");
  assert.equal(enumName(VisibilitySchema, Visibility.FOLLOWERS), "VISIBILITY_FOLLOWERS");
  assert.equal(enumName(NotificationTypeSchema, NotificationType.GROUP_JOIN_REQUEST), "NOTIFICATION_TYPE_GROUP_JOIN_REQUEST");
  assert.equal(enumName(VideoStatusSchema, 0), "VIDEO_STATUS_UNSPECIFIED");
});

test("enumName gives an unknown value (from a newer server) as its number", () => {
  assert.equal(enumName(VideoStatusSchema, 99), "99");
});

test("the TypeScript enum maps a value back to its short name", () => {
  assert.equal(VideoStatus[VideoStatus.PROCESSING], "PROCESSING");
  assert.equal(Visibility[Visibility.PUBLIC], "PUBLIC");
  assert.equal(VideoStatus[99], undefined);
});

test("every value of every exported enum has a name, and the two names agree", async () => {
  const sdk = await import("@flock-social/client");
  const schemas = Object.entries(sdk).filter(([name, v]) => name.endsWith("Schema") && v?.kind === "enum");
  assert.ok(schemas.length >= 10, `found ${schemas.length} enum schemas`);
  for (const [name, schema] of schemas) {
    const tsEnum = sdk[name.slice(0, -"Schema".length)];
    for (const v of schema.values) {
      assert.equal(enumName(schema, v.number), v.name, name);
      assert.ok(v.name.endsWith(tsEnum[v.number]), `${name}: ${v.name} ends with ${tsEnum[v.number]}`);
    }
  }
});
