// Shared pieces: error text, empty states, avatars, dates, enum names.
import { Code, ConnectError, type FieldViolation, FlockError, fieldViolations, timestampDate } from "@flock-social/client";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { type ReactNode, useEffect, useId } from "react";

import { Link } from "./router.js";

/**
 * Whether err is the browser failing to reach the server at all (down,
 * restarting, offline): fetch's own TypeError, which connect-web reports
 * as unknown or unavailable with the browser's words ("Failed to fetch",
 * Firefox's "NetworkError when attempting to fetch resource", Safari's
 * "Load failed").
 */
export function isNetworkError(err: unknown): boolean {
  if (!(err instanceof ConnectError)) return false;
  if (err.code !== Code.Unknown && err.code !== Code.Unavailable) return false;
  return /failed to fetch|networkerror|load failed|network error/i.test(err.rawMessage);
}

/** "full_name", "fullName" and "FullName" name the same field. */
const sameField = (a: string, b: string) => a.replace(/[_-]/g, "").toLowerCase() === b.replace(/[_-]/g, "").toLowerCase();

/** A violation in words: "Name must be 1-100 characters", "Full name: value length must be…". */
function violationText(v: FieldViolation, withField: boolean): string {
  const words = v.field.replace(/([a-z])([A-Z])/g, "$1 $2").replaceAll("_", " ").toLowerCase();
  const d = v.description;
  const text = withField && words && !d.toLowerCase().startsWith(words) ? `${words}: ${d}` : d;
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export function errorText(err: unknown): string {
  if (isNetworkError(err)) return "Can't reach the Flock server: check your connection and try again.";
  // Field violations in words, not protovalidate's "validation error: field: ..." line.
  const vs = fieldViolations(err);
  if (vs.length > 0) return vs.map((v) => violationText(v, true)).join(". ");
  if (err instanceof ConnectError) return err.rawMessage || err.message;
  if (err instanceof FlockError) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}

export function ErrorText({ error }: { error: unknown }) {
  if (!error) return null;
  return (
    <p className="error" role="alert">
      {errorText(error)}
    </p>
  );
}

/**
 * Errors of a form, placed: a violation of a field the form shows goes next
 * to that field (input(name) sets aria-invalid and aria-describedby on it,
 * <FieldError> shows the text), and anything else to the form (rest, for
 * <ErrorText>). fields are the request's field names the form has inputs for.
 */
export function useFormErrors(error: unknown, fields: string[]) {
  const base = useId();
  const vs = fieldViolations(error);
  const byField = new Map<string, string>();
  for (const v of vs) {
    const f = fields.find((f) => sameField(f, v.field));
    if (f && !byField.has(f)) byField.set(f, violationText(v, false));
  }
  const unplaced = vs.filter((v) => !fields.some((f) => sameField(f, v.field)));
  const rest: unknown = vs.length === 0 ? error : unplaced.length > 0 ? unplaced.map((v) => violationText(v, true)).join(". ") : null;
  const id = (field: string) => `${base}-${field}-error`;
  return {
    rest,
    /** The attributes of the input for field. */
    input: (field: string) =>
      byField.has(field) ? { "aria-invalid": true as const, "aria-describedby": id(field) } : {},
    /** The message for field, if the server refused it. */
    message: (field: string) =>
      byField.has(field) ? (
        <span className="error field-error" id={id(field)} role="alert">
          {byField.get(field)}
        </span>
      ) : null,
  };
}

/**
 * Merges the ARIA attributes of two helpers on one input (a form error and
 * a length limit): either makes it invalid, both describe it.
 */
export function aria(...parts: { "aria-invalid"?: true; "aria-describedby"?: string }[]) {
  const ids = parts.map((p) => p["aria-describedby"]).filter(Boolean);
  return {
    ...(parts.some((p) => p["aria-invalid"]) ? { "aria-invalid": true as const } : {}),
    ...(ids.length > 0 ? { "aria-describedby": ids.join(" ") } : {}),
  };
}

/** Characters as the server counts them (code points), not UTF-16 units as maxLength does. */
export function characters(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

/**
 * A text's length limit, shown instead of enforced by maxLength (which
 * cut pasted text silently): a counter from 90% of max on, and past max a
 * message saying by how much, with the input invalid. The form refuses to
 * send while over is true. what names the text with its article ("a
 * post"); verb is what the form does with it ("send", "save").
 */
export function useLimit(text: string, max: number, what: string, verb = "send") {
  const id = useId();
  const n = characters(text);
  const left = max - n;
  const shown = n >= max * 0.9;
  const fmt = (x: number) => x.toLocaleString("en-US");
  return {
    over: left < 0,
    input: left < 0 ? { "aria-invalid": true as const, "aria-describedby": id } : shown ? { "aria-describedby": id } : {},
    counter: !shown ? null : left >= 0 ? (
      <span id={id} className="counter muted small">
        {left === 1 ? "1 character left" : `${fmt(left)} characters left`}
      </span>
    ) : (
      <span id={id} className="counter error" role="alert">
        {`${-left === 1 ? "1 character" : `${fmt(-left)} characters`} over the limit: ${what} can be at most ${fmt(max)} characters. Shorten it to ${verb} it.`}
      </span>
    ),
  };
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="empty">{children}</p>;
}

export function Loading() {
  return (
    <p className="muted" aria-live="polite">
      Loading…
    </p>
  );
}

/** A count with its noun, singular for 1 ("1 comment", "2 comments"). */
export function counted(n: number | bigint, noun: string, plural = `${noun}s`): string {
  return `${n} ${Number(n) === 1 ? noun : plural}`;
}

/**
 * The name of an enum value, as protobuf-es writes the enum object
 * (Visibility[1] === "PUBLIC"), in lower case with spaces: "public".
 */
export function enumName(e: Record<number, string>, v: number): string {
  const name = e[v];
  return name === undefined ? `unknown (${v})` : name.toLowerCase().replaceAll("_", " ");
}

export function when(ts: Timestamp | undefined): string {
  if (!ts) return "";
  const d = timestampDate(ts);
  const s = (Date.now() - d.getTime()) / 1000;
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return d.toLocaleDateString();
}

export function Avatar({ url, name, size = 40 }: { url?: string; name: string; size?: number }) {
  if (url) return <img className="avatar" src={url} alt={`${name}'s avatar`} width={size} height={size} />;
  return (
    <span className="avatar placeholder" aria-hidden="true" data-size={size}>
      {name.slice(0, 1).toUpperCase()}
    </span>
  );
}

export function UserLink({ id, username }: { id: string; username: string }) {
  return <Link href={`/u/${id}`}>@{username}</Link>;
}

/** Post text with #hashtags as links to their search. */
export function Content({ text }: { text: string }) {
  const parts = text.split(/(#[\p{L}\p{N}_]+)/u);
  return (
    <p className="content">
      {parts.map((p, i) =>
        p.startsWith("#") ? (
          <Link key={i} href={`/search?tag=${encodeURIComponent(p.slice(1))}`}>
            {p}
          </Link>
        ) : (
          p
        ),
      )}
    </p>
  );
}

/** Sets the page title (the unread count shows in the tab). */
/**
 * An unread count as shown: the server counts up to 1000 (unreadCount 1000
 * means 1000 or more), so 1000 shows as "999+".
 */
export function unreadLabel(n: number): string {
  return n >= 1000 ? "999+" : String(n);
}

export function useTitle(title: string): void {
  useEffect(() => {
    document.title = title;
  }, [title]);
}
