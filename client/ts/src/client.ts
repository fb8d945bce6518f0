// createFlockClient: one Connect transport for every Flock service, with
// the access token added to each call and refreshed when it expires.

import { type Client, Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";

import { type Activity, ActivityService } from "./gen/flock/v1/activity_pb.js";
import { GroupService } from "./gen/flock/v1/group_pb.js";
import { ModerationService } from "./gen/flock/v1/moderation_pb.js";
import { type Notification, NotificationService } from "./gen/flock/v1/notification_pb.js";
import { PostService } from "./gen/flock/v1/post_pb.js";
import type { Video } from "./gen/flock/v1/types_pb.js";
import { type LoginResponse, UserService } from "./gen/flock/v1/user_pb.js";
import { runSubscription, type StreamSource, type SubscribeOptions } from "./subscribe.js";
import { openTabShare } from "./tabs.js";
import { downloadExport } from "./account.js";
import { FlockError, pollVideo, uploadVideo } from "./video.js";

/** The token pair of a session. */
export interface Tokens {
  /** A short-lived JWT sent as `Authorization: Bearer`. */
  accessToken: string;
  /** Exchanged once for a new pair; absent when the client was given only an access token. */
  refreshToken?: string;
}

export interface FlockClientOptions {
  /** The server, e.g. "https://flock.example" or "http://127.0.0.1:8080". */
  baseUrl: string;
  /** A token pair kept from an earlier session (see onTokens). */
  accessToken?: string;
  refreshToken?: string;
  /**
   * Called whenever the tokens change: after login and each refresh with the
   * new pair (store it: the old refresh token no longer works), and with
   * null after logout or when the session ended (a refresh was refused).
   */
  onTokens?: (tokens: Tokens | null) => void;
  /** A fetch to use instead of globalThis.fetch (tests, instrumentation). */
  fetch?: typeof globalThis.fetch;
  /** Send Protobuf binary instead of JSON (smaller; JSON is easier to inspect). */
  useBinaryFormat?: boolean;
  /** More interceptors, run inside the one that adds the token (they see the Authorization header). */
  interceptors?: Interceptor[];
  /**
   * Shares refreshes with the other clients of this origin that hold the
   * same tokens (browser tabs, workers) over a BroadcastChannel: one of them
   * calls RefreshToken and the others adopt the new pair (and call onTokens
   * with it) instead of refreshing again; a logout or a refused refresh in
   * one ends the others too. `true` uses the channel "flock-tokens " +
   * baseUrl; a string names the channel. Web Locks (navigator.locks) decide
   * which client refreshes where they exist. Where BroadcastChannel does not
   * exist the client refreshes alone, as without this option; the server's
   * reuse grace still keeps clients that refresh one token at once signed in.
   */
  shareAcrossTabs?: boolean | string;
}

/** Options of the client's waitVideo. */
export interface WaitVideoOptions {
  /** Poll interval, default 1000 ms. */
  intervalMs?: number;
  signal?: AbortSignal;
}

/** A Flock API client; see createFlockClient. */
export interface FlockClient {
  /** flock.v1.UserService: accounts, tokens, profiles, follows, blocks, search. */
  readonly users: Client<typeof UserService>;
  /** flock.v1.PostService: feed, posts, likes, comments, search, reports, videos. */
  readonly posts: Client<typeof PostService>;
  /** flock.v1.GroupService: groups, membership, group posts. */
  readonly groups: Client<typeof GroupService>;
  /** flock.v1.NotificationService: list, mark read, and the Subscribe stream. */
  readonly notifications: Client<typeof NotificationService>;
  /** flock.v1.ActivityService: the caller's activity log and its Subscribe stream. */
  readonly activity: Client<typeof ActivityService>;
  /** flock.v1.ModerationService: staff only. */
  readonly moderation: Client<typeof ModerationService>;
  /**
   * The Connect transport under every client above (the access token added,
   * refreshed on Unauthenticated): hand it to libraries that make their own
   * calls, such as `@connectrpc/connect-query`'s TransportProvider.
   */
  readonly transport: Transport;

  /**
   * Logs in with a username (any letter case) or an email address (anything
   * with an "@") and keeps the tokens. Rejects with a ConnectError:
   * Unauthenticated for an unknown account or a wrong password,
   * FailedPrecondition before the email is verified, PermissionDenied when
   * the account is suspended.
   */
  login(usernameOrEmail: string, password: string): Promise<LoginResponse>;
  /**
   * Ends the session on the server (its access tokens stop working and its
   * streams close) and forgets the tokens, even when the server cannot be
   * reached (then it rejects after forgetting them).
   */
  logout(): Promise<void>;
  /**
   * The tokens held now (accessToken is "" when the client was given only a
   * refresh token and has not used it yet), or null when logged out.
   */
  tokens(): Tokens | null;
  /**
   * Replaces the tokens (e.g. another tab refreshed them); onTokens is not
   * called. null forgets them.
   */
  setTokens(tokens: Tokens | null): void;
  /**
   * Exchanges the refresh token for a new pair now. Concurrent calls (and
   * the automatic refreshes) share one request. Rejects with
   * Unauthenticated, and forgets the tokens, when the session ended.
   */
  refresh(): Promise<Tokens>;

  /**
   * Uploads a video (see the standalone uploadVideo), refreshing the access
   * token and sending the file again once if it had expired. Rejects with a
   * FlockError.
   */
  uploadVideo(file: Blob, filename?: string, options?: { signal?: AbortSignal }): Promise<Video>;
  /** Polls PostService.GetVideo until the video is ready or failed. Rejects with a ConnectError. */
  waitVideo(videoId: string, options?: WaitVideoOptions): Promise<Video>;

  /**
   * Starts the download of the account's data export (see the standalone
   * downloadExport), refreshing the access token first if the server
   * refuses it as expired. Resolves to the Response streaming the zip.
   * Rejects with a FlockError.
   */
  downloadExport(options?: { signal?: AbortSignal }): Promise<Response>;
  /**
   * Signs out every other session of the account (ListSessions, then
   * RevokeSession for each one not current): their tokens stop working and
   * their streams close. Resolves to how many it ended.
   */
  signOutOtherSessions(): Promise<number>;

  /**
   * Stops sharing refreshes with other tabs (closes the channel of
   * shareAcrossTabs); the client keeps working on its own. Does nothing
   * without that option.
   */
  close(): void;

  /**
   * Delivers the caller's notifications as they happen, reconnecting after
   * disconnects without missing or repeating any (see SubscribeOptions).
   * Resolves with the last delivered id when opts.signal aborts.
   */
  subscribeNotifications(opts: SubscribeOptions<Notification>): Promise<string>;
  /** subscribeNotifications for the caller's own actions (the activity log). */
  subscribeActivity(opts: SubscribeOptions<Activity>): Promise<string>;
}

// The RPCs that take no access token (server/interceptors.go publicProcedures).
const publicMethods = new Set([
  "Register",
  "VerifyEmail",
  "ResendVerification",
  "Login",
  "RefreshToken",
  "Logout",
  "RequestPasswordReset",
  "ResetPassword",
]);

function isPublic(service: string, method: string): boolean {
  return service === UserService.typeName && publicMethods.has(method);
}

/**
 * Creates a client of every Flock service over the Connect protocol (fetch:
 * browsers and Node 20+).
 *
 * Every call except Register, VerifyEmail, ResendVerification, Login,
 * RefreshToken and Logout carries `Authorization: Bearer <accessToken>`.
 * When a unary call is refused with Code.Unauthenticated and a refresh token
 * is held, the client refreshes the tokens (one RefreshToken request shared
 * by every call that failed meanwhile: refresh tokens rotate, and presenting
 * a used one again after the server's short reuse grace revokes the session),
 * reports the new pair to onTokens and retries the call once. With
 * shareAcrossTabs, the clients of other tabs share that request too.
 */
export function createFlockClient(options: FlockClientOptions): FlockClient {
  const baseUrl = options.baseUrl.replace(/\/+$/, "");
  const fetchFn = options.fetch;
  let current: Tokens | null = options.accessToken
    ? { accessToken: options.accessToken, ...(options.refreshToken ? { refreshToken: options.refreshToken } : {}) }
    : options.refreshToken
      ? { accessToken: "", refreshToken: options.refreshToken }
      : null;

  const store = (tokens: Tokens | null, notify: boolean) => {
    current = tokens;
    if (notify) options.onTokens?.(tokens === null ? null : { ...tokens });
  };

  // Other tabs' refreshes and logouts apply to this client when it holds
  // the refresh token they are about.
  const tabs = options.shareAcrossTabs
    ? openTabShare(typeof options.shareAcrossTabs === "string" ? options.shareAcrossTabs : `flock-tokens ${baseUrl}`, {
        tokens(used, tokens) {
          if (current?.refreshToken === used) store({ ...tokens }, true);
        },
        ended(used) {
          if (current?.refreshToken === used) store(null, true);
        },
      })
    : undefined;

  const exchange = async (used: string): Promise<Tokens> => {
    const res = await users.refreshToken({ refreshToken: used });
    return { accessToken: res.accessToken, refreshToken: res.refreshToken };
  };

  let inflight: Promise<Tokens> | undefined;
  // One RefreshToken request at a time, shared by whoever asks meanwhile
  // (and, with shareAcrossTabs, by the other tabs).
  const refresh = (): Promise<Tokens> => {
    if (inflight) return inflight;
    const used = current?.refreshToken;
    if (!used) return Promise.reject(new ConnectError("no refresh token: log in again", Code.Unauthenticated));
    inflight = (async () => {
      try {
        const tokens = tabs ? { ...(await tabs.refresh(used, () => exchange(used))) } : await exchange(used);
        // A login or logout while the request was out wins over its answer;
        // a pair adopted from another tab meanwhile is kept as it is.
        if (current?.refreshToken === used) store(tokens, true);
        return tokens;
      } catch (err) {
        const cerr = ConnectError.from(err);
        if (cerr.code === Code.Unauthenticated && current?.refreshToken === used) store(null, true);
        throw cerr;
      } finally {
        inflight = undefined;
      }
    })();
    return inflight;
  };

  // Refreshes unless the access token changed since `sent` went out (another
  // call already refreshed): then retrying with the current one is enough.
  const refreshUnlessChanged = async (sent: string | undefined): Promise<void> => {
    if (current !== null && current.accessToken !== sent && current.accessToken !== "") return;
    await refresh();
  };

  const auth: Interceptor = (next) => async (req) => {
    if (isPublic(req.service.typeName, req.method.name)) {
      return next(req);
    }
    const sent = current?.accessToken || undefined;
    if (sent) req.header.set("Authorization", `Bearer ${sent}`);
    if (req.stream) return next(req);
    try {
      return await next(req);
    } catch (err) {
      const cerr = ConnectError.from(err);
      if (cerr.code !== Code.Unauthenticated || !current?.refreshToken || req.signal.aborted) throw err;
      await refreshUnlessChanged(sent);
      const token = current?.accessToken;
      if (!token) throw err;
      req.header.set("Authorization", `Bearer ${token}`);
      return await next(req);
    }
  };

  const transport = createConnectTransport({
    baseUrl,
    useBinaryFormat: options.useBinaryFormat ?? false,
    interceptors: [auth, ...(options.interceptors ?? [])],
    ...(fetchFn ? { fetch: fetchFn } : {}),
  });
  const users = createClient(UserService, transport);
  const posts = createClient(PostService, transport);
  const notifications = createClient(NotificationService, transport);
  const activity = createClient(ActivityService, transport);

  const source = <T>(open: StreamSource<T>["open"]): StreamSource<T> => ({
    open,
    accessToken: () => current?.accessToken || undefined,
    canRefresh: () => Boolean(current?.refreshToken),
    refreshUnlessChanged,
  });

  return {
    users,
    posts,
    groups: createClient(GroupService, transport),
    notifications,
    activity,
    moderation: createClient(ModerationService, transport),
    transport,

    async login(usernameOrEmail, password) {
      const identifier = usernameOrEmail.includes("@")
        ? { case: "email" as const, value: usernameOrEmail }
        : { case: "username" as const, value: usernameOrEmail };
      const res = await users.login({ identifier, password });
      store({ accessToken: res.accessToken, refreshToken: res.refreshToken }, true);
      return res;
    },

    async logout() {
      const refreshToken = current?.refreshToken;
      store(null, true);
      if (!refreshToken) return;
      tabs?.ended(refreshToken);
      try {
        await users.logout({ refreshToken });
      } catch (err) {
        // An unknown or used refresh token: the session is over already.
        if (ConnectError.from(err).code !== Code.Unauthenticated) throw err;
      }
    },

    tokens: () => (current === null ? null : { ...current }),
    setTokens: (tokens) => store(tokens === null ? null : { ...tokens }, false),
    refresh,

    async uploadVideo(file, filename, opts) {
      const send = () =>
        uploadVideo({
          baseUrl,
          accessToken: current?.accessToken ?? "",
          file,
          ...(filename !== undefined ? { filename } : {}),
          ...(opts?.signal ? { signal: opts.signal } : {}),
          ...(fetchFn ? { fetch: fetchFn } : {}),
        });
      const sent = current?.accessToken || undefined;
      try {
        return await send();
      } catch (err) {
        if (!(err instanceof FlockError) || err.status !== 401 || !current?.refreshToken) throw err;
        // A File or Blob can be read again: send it once more with a fresh token.
        await refreshUnlessChanged(sent);
        return await send();
      }
    },

    async downloadExport(opts) {
      const send = () =>
        downloadExport({
          baseUrl,
          accessToken: current?.accessToken ?? "",
          ...(opts?.signal ? { signal: opts.signal } : {}),
          ...(fetchFn ? { fetch: fetchFn } : {}),
        });
      const sent = current?.accessToken || undefined;
      try {
        return await send();
      } catch (err) {
        if (!(err instanceof FlockError) || err.status !== 401 || !current?.refreshToken) throw err;
        await refreshUnlessChanged(sent);
        return await send();
      }
    },

    async signOutOtherSessions() {
      const others: string[] = [];
      let pageToken = "";
      do {
        const res = await users.listSessions({ pageSize: 100, pageToken });
        others.push(...res.sessions.filter((s) => !s.current).map((s) => s.id));
        pageToken = res.nextPageToken;
      } while (pageToken !== "");
      for (const sessionId of others) {
        try {
          await users.revokeSession({ sessionId });
        } catch (err) {
          // Ended meanwhile: that is what we wanted.
          if (ConnectError.from(err).code !== Code.NotFound) throw err;
        }
      }
      return others.length;
    },

    async waitVideo(videoId, opts) {
      const signal = opts?.signal;
      return pollVideo(
        async () => {
          const res = await posts.getVideo({ videoId }, signal ? { signal } : {});
          if (!res.video) throw new ConnectError("GetVideo answered without a video", Code.Internal);
          return res.video;
        },
        opts?.intervalMs,
        signal,
      );
    },

    close() {
      tabs?.close();
    },

    subscribeNotifications(opts) {
      return runSubscription(
        source<Notification>((sinceId, signal, onHeader) => notifications.subscribe({ sinceId }, { signal, onHeader })),
        opts,
      );
    },

    subscribeActivity(opts) {
      return runSubscription(
        source<Activity>((sinceId, signal, onHeader) => activity.subscribe({ sinceId }, { signal, onHeader })),
        opts,
      );
    },
  };
}
