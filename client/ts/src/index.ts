// @flock-social/client: the TypeScript SDK of the Flock API.
//
// createFlockClient gives Connect clients of the six services with token
// handling and resumable streams; the generated messages, enums and service
// descriptors (protoc-gen-es v2, from proto/flock/v1) are exported beside it,
// as are the plain-HTTP video helpers.

export { createFlockClient } from "./client.js";
export type { FlockClient, FlockClientOptions, Tokens, WaitVideoOptions } from "./client.js";
export type { SubscribeOptions } from "./subscribe.js";
export { FlockError, getVideo, uploadVideo, waitVideo } from "./video.js";
export { enumName } from "./enums.js";
export { fieldViolations } from "./errors.js";
export type { FieldViolation } from "./errors.js";
export type { HttpOptions, UploadOptions, VideoOptions, WaitOptions } from "./video.js";
export { downloadExport, exportFilename } from "./account.js";

// What callers of the clients need from Connect, so that an app can depend on
// this package alone.
export { Code, ConnectError } from "@connectrpc/connect";
export type { CallOptions, Client, Interceptor, Transport } from "@connectrpc/connect";
export { timestampDate } from "@bufbuild/protobuf/wkt";

// Every message, enum and service of flock.v1.
export * from "./gen/flock/v1/activity_pb.js";
export * from "./gen/flock/v1/group_pb.js";
export * from "./gen/flock/v1/moderation_pb.js";
export * from "./gen/flock/v1/notification_pb.js";
export * from "./gen/flock/v1/post_pb.js";
export * from "./gen/flock/v1/types_pb.js";
export * from "./gen/flock/v1/user_pb.js";
