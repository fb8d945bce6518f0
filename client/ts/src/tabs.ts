// Sharing token refreshes between clients of one origin (browser tabs,
// workers, or clients in one Node process) over a BroadcastChannel: one of
// them exchanges a refresh token, the others adopt the pair it got instead
// of presenting the same token again. The server's reuse grace (30 s by
// default) keeps a duplicate refresh harmless; sharing keeps the clients on
// one pair, so that none is left holding a rotated token that would revoke
// the session once the grace is over.

import { Code, ConnectError } from "@connectrpc/connect";

import type { Tokens } from "./client.js";

/** What the clients of one channel tell each other. `used` is the refresh token it is about. */
type Message =
  // Without Web Locks: the sender means to exchange `used` (the lowest ticket does).
  | { type: "claim"; used: string; ticket: string }
  // `used` was exchanged for `tokens`.
  | { type: "tokens"; used: string; tokens: Tokens }
  // The exchange of `used` failed for another reason (network): try yourself.
  | { type: "failed"; used: string }
  // The session of `used` ended: logged out, or a refresh was refused.
  | { type: "ended"; used: string }
  // Nothing: the sender waits for its own copy (see sync).
  | { type: "ping"; used: string; ticket: string };

/** What the client hears from the other tabs. */
export interface TabPeerEvents {
  /** Another tab exchanged `used` for `tokens`. */
  tokens(used: string, tokens: Tokens): void;
  /** Another tab saw the session of `used` end. */
  ended(used: string): void;
}

/** The part of a client that talks to the other tabs. */
export interface TabShare {
  /**
   * Exchanges `used` once across the tabs: either this tab calls `exchange`
   * and tells the others the result, or it waits for the tab that does.
   * Rejects with Unauthenticated when the session ended, and as `exchange`
   * does otherwise.
   */
  refresh(used: string, exchange: () => Promise<Tokens>): Promise<Tokens>;
  /** Tells the other tabs that the session of `used` ended (logout). */
  ended(used: string): void;
  /** Stops listening. */
  close(): void;
}

/** How long a tab waits for another one's refresh before it refreshes itself. */
const waitForPeerMs = 10_000;
/** Without Web Locks: how long claims may take to reach the other tabs. */
const settleMs = 25;
/** How many recent exchanges are remembered, for tabs that ask late. */
const remembered = 16;

type Outcome = { tokens: Tokens } | { ended: true } | { failed: true };

interface LockManagerLike {
  request(name: string, callback: () => Promise<Tokens>): Promise<Tokens>;
}

/**
 * Opens the channel `name`, or returns undefined where BroadcastChannel does
 * not exist (the client then refreshes alone, as without the option). Web
 * Locks (navigator.locks), where present, decide which tab refreshes;
 * elsewhere the tabs that claim one token at once pick the lowest ticket.
 */
export function openTabShare(name: string, events: TabPeerEvents): TabShare | undefined {
  if (typeof BroadcastChannel === "undefined") return undefined;
  const channel = new BroadcastChannel(name);
  // A second channel of the same name hears this tab's own claims: once
  // one comes back, the claims sent before it have arrived too.
  const echo = new BroadcastChannel(name);
  // Node keeps the process alive for an open channel; a browser ignores this.
  for (const c of [channel, echo]) (c as { unref?: () => void }).unref?.();

  const outcomes = new Map<string, Outcome>();
  const waiters = new Map<string, Set<(o: Outcome) => void>>();
  const claims = new Map<string, Set<string>>();
  const echoes = new Map<string, () => void>();

  const addClaim = (used: string, ticket: string) => {
    let set = claims.get(used);
    if (!set) {
      claims.set(used, (set = new Set()));
      // Claims of a tab that went away are never settled: keep a few.
      while (claims.size > remembered) claims.delete(claims.keys().next().value as string);
    }
    set.add(ticket);
  };
  const settle = (used: string, o: Outcome) => {
    outcomes.set(used, o);
    while (outcomes.size > remembered) outcomes.delete(outcomes.keys().next().value as string);
    claims.delete(used);
    for (const w of waiters.get(used) ?? []) w(o);
    waiters.delete(used);
  };

  channel.onmessage = (ev: MessageEvent<Message>) => {
    const m = ev.data;
    if (!m || typeof m.used !== "string") return;
    switch (m.type) {
      case "claim":
        if (outcomes.has(m.used)) break;
        addClaim(m.used, m.ticket);
        break;
      case "tokens":
        settle(m.used, { tokens: m.tokens });
        events.tokens(m.used, m.tokens);
        break;
      case "failed":
        // Only those waiting care: they try themselves.
        for (const w of waiters.get(m.used) ?? []) w({ failed: true });
        waiters.delete(m.used);
        claims.delete(m.used);
        break;
      case "ended":
        settle(m.used, { ended: true });
        events.ended(m.used);
        break;
    }
  };
  echo.onmessage = (ev: MessageEvent<Message>) => {
    const m = ev.data;
    if (m?.type === "claim" || m?.type === "ping") echoes.get(m.ticket)?.();
  };

  const post = (m: Message) => channel.postMessage(m);
  const fromOutcome = (o: Outcome): Tokens | undefined => {
    if ("tokens" in o) return o.tokens;
    if ("ended" in o) throw new ConnectError("the session ended in another tab: log in again", Code.Unauthenticated);
    return undefined;
  };
  const waitFor = (used: string, ms: number) =>
    new Promise<Outcome>((resolve) => {
      const timer = setTimeout(() => done({ failed: true }), ms);
      const done = (o: Outcome) => {
        clearTimeout(timer);
        waiters.get(used)?.delete(done);
        resolve(o);
      };
      let set = waiters.get(used);
      if (!set) waiters.set(used, (set = new Set()));
      set.add(done);
    });
  const newTicket = () => `${Date.now().toString(36).padStart(10, "0")}:${Math.random().toString(36).slice(2)}`;
  // Sends m (a claim or a ping) and resolves once this tab's echo channel
  // has it back and then, after `extraMs`, one more task has run: by then
  // the messages sent to this tab before m have arrived, certainly from
  // clients of this thread, and very likely from other tabs.
  const sync = async (m: Message & { ticket: string }, extraMs: number) => {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 1000);
      echoes.set(m.ticket, () => {
        clearTimeout(timer);
        resolve();
      });
      post(m);
    });
    echoes.delete(m.ticket);
    await new Promise((resolve) => setTimeout(resolve, extraMs));
  };

  // Exchanges `used` here and tells the other tabs.
  const exchangeHere = async (used: string, exchange: () => Promise<Tokens>): Promise<Tokens> => {
    try {
      const tokens = await exchange();
      settle(used, { tokens });
      post({ type: "tokens", used, tokens });
      return tokens;
    } catch (err) {
      if (ConnectError.from(err).code === Code.Unauthenticated) {
        settle(used, { ended: true });
        post({ type: "ended", used });
      } else {
        claims.delete(used);
        post({ type: "failed", used });
      }
      throw err;
    }
  };

  const locks = (globalThis as { navigator?: { locks?: LockManagerLike } }).navigator?.locks;

  return {
    async refresh(used, exchange) {
      const known = outcomes.get(used);
      if (known) {
        const t = fromOutcome(known);
        if (t) return t;
      }
      if (locks) {
        return locks.request(name, async () => {
          // A tab that held the lock before has told its result: take it.
          await sync({ type: "ping", used, ticket: newTicket() }, 0);
          const o = outcomes.get(used);
          const t = o && fromOutcome(o);
          return t ?? exchangeHere(used, exchange);
        });
      }
      // Claim the exchange, wait until this claim has come back (and with
      // it any sent before), and leave it to the lowest ticket.
      const ticket = newTicket();
      addClaim(used, ticket);
      await sync({ type: "claim", used, ticket }, settleMs);
      const o = outcomes.get(used);
      if (o) {
        const t = fromOutcome(o);
        if (t) return t;
      }
      const first = [...(claims.get(used) ?? [ticket])].sort()[0];
      if (first !== ticket) {
        const t = fromOutcome(await waitFor(used, waitForPeerMs));
        if (t) return t;
        // The other tab failed or went away: the server's grace lets this one try.
      }
      return exchangeHere(used, exchange);
    },
    ended(used) {
      settle(used, { ended: true });
      post({ type: "ended", used });
    },
    close() {
      channel.close();
      echo.close();
      for (const ws of waiters.values()) for (const w of ws) w({ failed: true });
      waiters.clear();
    },
  };
}
