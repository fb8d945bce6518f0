// The session: one FlockClient (client/ts) per tab, its tokens kept in
// localStorage so that a reload and the other tabs start signed in. The
// client refreshes the access token when a call is refused with
// Unauthenticated and shares that refresh with the other tabs over a
// BroadcastChannel (shareAcrossTabs), so tabs refreshing at once all stay
// signed in; a login or logout in one tab reaches the others through the
// storage event.
import { Code, ConnectError, createFlockClient, type FlockClient, type Tokens } from "@flock-social/client";
import type { Interceptor } from "@connectrpc/connect";

const key = "flock.tokens";
// Why the session ended, when the server said so: the login page shows it.
const endedKey = "flock.ended";

function load(): Tokens | null {
  try {
    const v = JSON.parse(localStorage.getItem(key) ?? "null") as Tokens | null;
    return v && typeof v.accessToken === "string" ? v : null;
  } catch {
    return null;
  }
}

type Listener = (signedIn: boolean) => void;
const listeners = new Set<Listener>();
const notify = () => listeners.forEach((l) => l(client.tokens() !== null));

/**
 * Keeps the server's reason when it refuses a refresh ("this session was
 * signed out when the account's password was changed..."): the SDK then
 * signs the tab out (onTokens(null)) without passing the reason on. The
 * SDK's own calls go through this interceptor too, so this is the
 * RefreshToken it sends; it is written before the SDK tells the other tabs
 * that the session ended, and localStorage reaches them all.
 */
const recordWhyEnded: Interceptor = (next) => async (req) => {
  try {
    return await next(req);
  } catch (err) {
    const cerr = ConnectError.from(err);
    if (req.method.name === "RefreshToken" && cerr.code === Code.Unauthenticated && cerr.rawMessage)
      localStorage.setItem(endedKey, cerr.rawMessage);
    throw err;
  }
};

/**
 * Why the last session ended, as the server said, when a refused refresh
 * signed the tab out (null after a login or a logout of one's own).
 */
export function whyEnded(): string | null {
  return localStorage.getItem(endedKey);
}

/** Forgets why the last session ended (a new one started, or the user logged out). */
export function forgetWhyEnded(): void {
  localStorage.removeItem(endedKey);
}

const saved = load();
export const client: FlockClient = createFlockClient({
  baseUrl: location.origin,
  ...(saved ? { accessToken: saved.accessToken, ...(saved.refreshToken ? { refreshToken: saved.refreshToken } : {}) } : {}),
  shareAcrossTabs: true,
  interceptors: [recordWhyEnded],
  onTokens(tokens) {
    if (tokens) forgetWhyEnded();
    if (tokens) localStorage.setItem(key, JSON.stringify(tokens));
    else localStorage.removeItem(key);
    notify();
  },
});

addEventListener("storage", (e) => {
  if (e.key !== key) return;
  const next = load();
  const cur = client.tokens();
  if (next?.refreshToken === cur?.refreshToken && next?.accessToken === cur?.accessToken) return;
  client.setTokens(next);
  notify();
});

export function onSession(l: Listener): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}

export const signedIn = () => client.tokens() !== null;
