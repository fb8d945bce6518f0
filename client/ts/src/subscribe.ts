// A resumable server stream: NotificationService/Subscribe and
// ActivityService/Subscribe send each event once, in id order, and resume
// after a given id. runSubscription keeps such a stream open across
// disconnects by reconnecting with the last id it delivered.

import { Code, ConnectError } from "@connectrpc/connect";

import { sleep } from "./video.js";

/** Options of subscribeNotifications and subscribeActivity. */
export interface SubscribeOptions<T> {
  /**
   * Resume after this event: every later one is delivered first, oldest
   * first, then the live ones. Without it the stream starts now.
   */
  sinceId?: string;
  /** Stops the subscription; the returned promise then resolves. */
  signal: AbortSignal;
  /**
   * Called with each event, in order, once. The next event waits until a
   * returned promise settles; a throw (or rejection) ends the subscription
   * with that error.
   */
  onEvent: (event: T) => void | Promise<void>;
  /**
   * Called each time a connection is listening (the server has subscribed):
   * whatever happens from then on is delivered. A connection the server
   * refuses does not call it.
   */
  onOpen?: () => void;
  /**
   * Called when a connection drops and another will be tried after
   * `retryInMs`, with the reason (a ConnectError: Code.Unavailable when the
   * server restarts or the client fell behind, Code.Unknown for a network
   * failure).
   */
  onDisconnect?: (error: ConnectError, retryInMs: number) => void;
  /** Reconnect delays: exponential from initialMs (500) up to maxMs (30000), with jitter. */
  backoff?: { initialMs?: number; maxMs?: number };
}

/**
 * The response header of a Subscribe stream that listens: the sinceId that
 * resumes it with nothing missed, even before its first event. A stream the
 * server refused has none (its headers come with its error).
 */
export const sinceIdHeader = "Flock-Since-Id";

/** What runSubscription needs of the client: opening a stream and the session. */
export interface StreamSource<T> {
  /** Opens one connection; onHeader is called with the response headers when they arrive. */
  open(sinceId: string, signal: AbortSignal, onHeader: (headers: Headers) => void): AsyncIterable<T>;
  /** The access token the next connection will carry. */
  accessToken(): string | undefined;
  /** Whether a refresh token is held. */
  canRefresh(): boolean;
  /** Refreshes the tokens (shared with every other caller) unless they changed since `sent`. */
  refreshUnlessChanged(sent: string | undefined): Promise<void>;
}

// Errors that reconnecting does not cure.
const terminal = new Set<Code>([
  Code.InvalidArgument,
  Code.NotFound,
  Code.AlreadyExists,
  Code.PermissionDenied,
  Code.FailedPrecondition,
  Code.OutOfRange,
  Code.Unimplemented,
  Code.Unauthenticated,
]);

// Where the backoff starts after resource_exhausted (the server's cap on
// streams per account): initialMs * 2^2, 2 s by default.
const exhaustedAttempt = 2;

// A connection that delivered an event or lasted this long was healthy:
// the next failure starts the backoff over.
const healthyAfterMs = 10_000;

/**
 * Runs a subscription until opts.signal aborts (resolves with the id of the
 * last event delivered, for a later sinceId) or a terminal error (rejects):
 * a ConnectError the server answered that reconnecting cannot fix
 * (Unauthenticated once a refresh did not help: the session ended;
 * InvalidArgument for a bad sinceId; PermissionDenied), or what onEvent threw.
 *
 * Every other end of a connection (network failure, Unavailable, a stream
 * that ends) is followed by a reconnect after a capped exponential backoff
 * with jitter, passing the last delivered id as since_id (before the first
 * event, the position the server named when the first connection listened),
 * so that no event is missed or delivered twice. ResourceExhausted (the account holds as
 * many streams as the server allows) is retried too, the backoff starting
 * at seconds: the stream gets in once another of the account's closes.
 */
export async function runSubscription<T extends { id: string }>(
  source: StreamSource<T>,
  opts: SubscribeOptions<T>,
): Promise<string> {
  const { signal } = opts;
  const initialMs = opts.backoff?.initialMs ?? 500;
  const maxMs = opts.backoff?.maxMs ?? 30_000;
  let lastId = opts.sinceId ?? "";
  let attempt = 0;
  let refreshed = false;

  while (!signal.aborted) {
    // One AbortController per connection, so that an early exit (onEvent
    // threw) releases the HTTP request too.
    const conn = new AbortController();
    const stop = () => conn.abort(signal.reason);
    signal.addEventListener("abort", stop, { once: true });
    const sent = source.accessToken();
    const started = Date.now();
    let opened = false;
    let delivered = false;
    let failure: ConnectError;
    try {
      const events = source.open(lastId, conn.signal, (headers) => {
        const since = headers.get(sinceIdHeader);
        if (!since) return; // a refusal: its error follows
        // No event yet: resume from where this connection started, not
        // from the next one's "now", which would skip what happens between.
        if (lastId === "") lastId = since;
        opened = true;
        refreshed = false;
        opts.onOpen?.();
      });
      for await (const event of events) {
        // Ids grow with time (same length, sortable): anything not after
        // the last one was already delivered.
        if (lastId !== "" && event.id.length === lastId.length && event.id <= lastId) continue;
        try {
          await opts.onEvent(event);
        } catch (err) {
          throw new HandlerError(err);
        }
        lastId = event.id;
        delivered = true;
      }
      failure = new ConnectError("the stream ended", Code.Unavailable);
    } catch (err) {
      if (err instanceof HandlerError) throw err.cause;
      if (signal.aborted) break;
      failure = ConnectError.from(err);
    } finally {
      signal.removeEventListener("abort", stop);
      conn.abort();
    }

    if (failure.code === Code.Unauthenticated && !refreshed && source.canRefresh()) {
      // The access token expired (or was refused): refresh once, then
      // reconnect at once. A refused refresh (the session ended) ends the
      // subscription; one that could not reach the server is retried later.
      refreshed = true;
      try {
        await source.refreshUnlessChanged(sent);
        continue;
      } catch (err) {
        failure = ConnectError.from(err);
        if (failure.code === Code.Unauthenticated) throw failure;
        refreshed = false;
      }
    }
    if (terminal.has(failure.code)) throw failure;
    if (opened && (delivered || Date.now() - started >= healthyAfterMs)) attempt = 0;
    // Too many streams open for the account: a slot frees only when another
    // stream ends, so start the backoff at seconds, not milliseconds.
    if (failure.code === Code.ResourceExhausted) attempt = Math.max(attempt, exhaustedAttempt);
    const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
    const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    attempt++;
    opts.onDisconnect?.(failure, delay);
    try {
      await sleep(delay, signal);
    } catch {
      break; // aborted while waiting
    }
  }
  return lastId;
}

/** Carries what onEvent threw past the stream's own error handling. */
class HandlerError {
  constructor(readonly cause: unknown) {}
}
