// Names of enum values. Enum fields of the generated messages are numbers
// (protobuf-es v2 uses TypeScript numeric enums), so printing one shows
// "2"; these give the name the proto file and the JSON of the REST API use.

import type { DescEnum } from "@bufbuild/protobuf";

/**
 * enumName returns the name of an enum value as the proto file spells it,
 * which is also how the REST API and the Go SDK print it:
 * `enumName(VideoStatusSchema, video.status)` is `"VIDEO_STATUS_READY"`.
 * A value this version of the SDK does not know (from a newer server) is
 * returned as its number in text, like `"7"`.
 *
 * For the short name of a known value, the TypeScript enum maps back:
 * `VideoStatus[video.status]` is `"READY"` (undefined for an unknown value).
 */
export function enumName(schema: DescEnum, value: number): string {
  return schema.value[value]?.name ?? String(value);
}
