// What the tests share: the servers and accounts that server/ts_client_test.go
// started and made (in the environment), and small helpers. Without
// FLOCK_URL the tests skip themselves.
import { setTimeout as sleep } from "node:timers/promises";

export { sleep };

/** The main server: default token lifetime, video processing. */
export const baseUrl = process.env.FLOCK_URL;
/** A server whose access tokens live FLOCK_ACCESS_TTL_MS (2 s). */
export const shortUrl = process.env.FLOCK_SHORT_URL;
export const accessTtlMs = Number(process.env.FLOCK_ACCESS_TTL_MS ?? 2000);
/** A small mp4 file, when ffmpeg was there to make it. */
export const videoPath = process.env.FLOCK_VIDEO;
export const maxBytes = Number(process.env.FLOCK_MAX_BYTES ?? 0);

/** Registered, verified accounts by username: {id, username, email, password, accessToken, refreshToken}. */
export const accounts = JSON.parse(process.env.FLOCK_ACCOUNTS ?? "{}");

/**
 * A fetch that records each request (procedure name or path, HTTP status)
 * before handing it to the global fetch.
 */
export function recordingFetch() {
  const calls = [];
  const f = async (input, init) => {
    const url = typeof input === "string" ? input : input.url;
    const res = await fetch(input, init);
    calls.push({ path: new URL(url).pathname, status: res.status });
    return res;
  };
  f.calls = calls;
  f.count = (suffix, status) => calls.filter((c) => c.path.endsWith(suffix) && (status === undefined || c.status === status)).length;
  return f;
}

/** Collects what a subscription delivers; next(n) waits until n events have arrived. */
export function collector() {
  const events = [];
  let waiters = [];
  let opens = 0;
  let openWaiters = [];
  return {
    events,
    get opens() {
      return opens;
    },
    onEvent(e) {
      events.push(e);
      waiters = waiters.filter((w) => (events.length >= w.n ? (w.resolve(), false) : true));
    },
    onOpen() {
      opens++;
      openWaiters = openWaiters.filter((w) => (opens >= w.n ? (w.resolve(), false) : true));
    },
    /** Resolves once at least n events arrived; fails after ms. */
    until(n, ms = 15_000) {
      if (events.length >= n) return Promise.resolve();
      return within(new Promise((resolve) => waiters.push({ n, resolve })), ms, `${n} events (have ${events.length})`);
    },
    /** Resolves once the stream was open n times. */
    opened(n = 1, ms = 15_000) {
      if (opens >= n) return Promise.resolve();
      return within(new Promise((resolve) => openWaiters.push({ n, resolve })), ms, `open #${n}`);
    },
  };
}

function within(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
    }),
  ]);
}
