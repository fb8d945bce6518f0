// Shared pieces: error text, empty states, avatars, dates, enum names.
import { Code, ConnectError, FlockError, timestampDate } from "@flock-social/client";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { type ReactNode, useEffect } from "react";

import { Link } from "./router.js";

/** The server's own message: ConnectError.rawMessage, without the "[code]" prefix. */
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

export function errorText(err: unknown): string {
  if (isNetworkError(err)) return "Can't reach the Flock server: check your connection and try again.";
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
