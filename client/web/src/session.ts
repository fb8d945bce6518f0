// The session: one FlockClient (client/ts) per tab, its tokens kept in
// localStorage so that a reload and the other tabs start signed in. The
// client refreshes the access token when a call is refused with
// Unauthenticated and shares that refresh with the other tabs over a
// BroadcastChannel (shareAcrossTabs), so tabs refreshing at once all stay
// signed in; a login or logout in one tab reaches the others through the
// storage event.
import { createFlockClient, type FlockClient, type Tokens } from "@flock-social/client";

const key = "flock.tokens";

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

const saved = load();
export const client: FlockClient = createFlockClient({
  baseUrl: location.origin,
  ...(saved ? { accessToken: saved.accessToken, ...(saved.refreshToken ? { refreshToken: saved.refreshToken } : {}) } : {}),
  shareAcrossTabs: true,
  onTokens(tokens) {
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
