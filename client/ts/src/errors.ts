// Reading which fields a refusal names.

import { ConnectError } from "@connectrpc/connect";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";

/** One field the server refused, as google.rpc.BadRequest names it. */
export interface FieldViolation {
  /** The field, by its proto name (`new_password`, `members[2].role`). */
  field: string;
  /** What is wrong and how to fix it. */
  description: string;
}

/**
 * The fields an error names: the server adds a google.rpc.BadRequest
 * detail to every invalid_argument with field violations, whether the
 * proto's rules (protovalidate) or the domain caught them, and to any
 * domain error about one field (server/interceptors.go), over every
 * transport (Connect, gRPC, gRPC-Web). [] for any other error.
 *
 * It is decoded here by hand, with the protobuf runtime's BinaryReader:
 * no generated TypeScript exists for google/rpc/error_details.proto (gen/ts
 * holds flock, buf/validate and google/api only), and generating it would
 * mean another proto dependency and another embedded descriptor in the
 * bundle for two string fields. The buf.validate.Violations detail, which
 * is generated, comes only with the proto rules' violations, not the
 * domain's; and the message text ("validation error: field: ...") is
 * protovalidate's wording, not a format to parse.
 */
export function fieldViolations(err: unknown): FieldViolation[] {
  // Not invalid_argument only: a conflict about one field (a username held
  // after its account's deletion) names its field the same way.
  if (!(err instanceof ConnectError)) return [];
  const out: FieldViolation[] = [];
  for (const d of err.details) {
    // Incoming details only: { type, value } as read from the wire.
    if (!("type" in d) || d.type !== "google.rpc.BadRequest" || !(d.value instanceof Uint8Array)) continue;
    try {
      // BadRequest { repeated FieldViolation field_violations = 1; }
      // FieldViolation { string field = 1; string description = 2; ... }
      const r = new BinaryReader(d.value);
      while (r.pos < r.len) {
        const [no, wt] = r.tag();
        if (no !== 1 || wt !== WireType.LengthDelimited) {
          r.skip(wt, no);
          continue;
        }
        const v = new BinaryReader(r.bytes());
        const fv: FieldViolation = { field: "", description: "" };
        while (v.pos < v.len) {
          const [fno, fwt] = v.tag();
          if (fno === 1 && fwt === WireType.LengthDelimited) fv.field = v.string();
          else if (fno === 2 && fwt === WireType.LengthDelimited) fv.description = v.string();
          else v.skip(fwt, fno);
        }
        if (fv.description) out.push(fv);
      }
    } catch {
      // A detail that does not decode: the message says it all the same.
    }
  }
  return out;
}
