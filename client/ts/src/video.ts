// The parts of the Flock API that are plain HTTP rather than RPCs: the video
// upload (multipart/form-data, streamed by fetch) and, for symmetry, reading
// a video over REST. They need only a base URL and an access token; the
// client from createFlockClient wraps them with token refresh.

import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";

import { type Video, VideoSchema, VideoStatus } from "./gen/flock/v1/types_pb.js";

/**
 * An error answered by a plain-HTTP endpoint of the Flock server (the video
 * upload, REST reads). RPCs made through the Connect clients fail with a
 * ConnectError instead; connectCode lets one switch handle both.
 */
export class FlockError extends Error {
  /** HTTP status, e.g. 413 for a file past the limit, 429 past the upload rate. */
  readonly status: number;
  /** Connect code name, e.g. "resource_exhausted", "invalid_argument", "unauthenticated". */
  readonly code: string;
  /** The same code as the Code enum of @connectrpc/connect (Code.ResourceExhausted). */
  readonly connectCode: Code;
  /** Seconds the server asked to wait (Retry-After of a 429), when it said so. */
  readonly retryAfterSeconds?: number;

  constructor(status: number, code: string, message: string, retryAfterSeconds?: number) {
    super(message);
    this.name = "FlockError";
    this.status = status;
    this.code = code;
    this.connectCode = codeOf(code);
    if (retryAfterSeconds !== undefined) this.retryAfterSeconds = retryAfterSeconds;
  }
}

const codeNames: Record<number, string> = {
  [Code.Canceled]: "canceled",
  [Code.Unknown]: "unknown",
  [Code.InvalidArgument]: "invalid_argument",
  [Code.DeadlineExceeded]: "deadline_exceeded",
  [Code.NotFound]: "not_found",
  [Code.AlreadyExists]: "already_exists",
  [Code.PermissionDenied]: "permission_denied",
  [Code.ResourceExhausted]: "resource_exhausted",
  [Code.FailedPrecondition]: "failed_precondition",
  [Code.Aborted]: "aborted",
  [Code.OutOfRange]: "out_of_range",
  [Code.Unimplemented]: "unimplemented",
  [Code.Internal]: "internal",
  [Code.Unavailable]: "unavailable",
  [Code.DataLoss]: "data_loss",
  [Code.Unauthenticated]: "unauthenticated",
};

function codeOf(name: string): Code {
  for (const [num, n] of Object.entries(codeNames)) {
    if (n === name) return Number(num) as Code;
  }
  return Code.Unknown;
}

/** Turns a non-success answer (a google.rpc.Status JSON body) into a FlockError. */
export async function failure(res: Response): Promise<FlockError> {
  let body: { code?: unknown; message?: unknown } = {};
  try {
    body = (await res.json()) as typeof body;
  } catch {
    // not JSON (a proxy's page): keep the status alone
  }
  const code =
    typeof body.code === "number"
      ? (codeNames[body.code] ?? "unknown")
      : typeof body.code === "string"
        ? body.code
        : "unknown";
  const message = typeof body.message === "string" && body.message !== "" ? body.message : `HTTP ${res.status}`;
  const retry = Number(res.headers.get("Retry-After"));
  return new FlockError(res.status, code, message, Number.isFinite(retry) && retry > 0 ? retry : undefined);
}

function base(url: string): string {
  return String(url).replace(/\/+$/, "");
}

function parseVideo(body: unknown): Video {
  const video = (body as { video?: JsonValue } | null)?.video;
  if (video === undefined || video === null) {
    throw new FlockError(502, "internal", "the server answered without a video");
  }
  return fromJson(VideoSchema, video, { ignoreUnknownFields: true });
}

/** What every plain-HTTP helper needs. */
export interface HttpOptions {
  /** The server, e.g. "https://flock.example" or "http://127.0.0.1:8080". */
  baseUrl: string;
  /** An access token, as Login or RefreshToken return it. */
  accessToken: string;
  signal?: AbortSignal;
  /** A fetch to use instead of globalThis.fetch. */
  fetch?: typeof globalThis.fetch;
}

export interface UploadOptions extends HttpOptions {
  /**
   * The video: a File from an `<input type=file>`, or in Node a Blob from
   * `fs.openAsBlob(path)`, which is read from disk as it is sent.
   */
  file: Blob;
  /** The file name sent with the part (the server decides the type from the bytes, never the name). */
  filename?: string;
}

export interface VideoOptions extends HttpOptions {
  videoId: string;
}

export interface WaitOptions extends VideoOptions {
  /** Poll interval, default 1000 ms. */
  intervalMs?: number;
}

/**
 * Uploads a video: POST /api/posts/videos/ with the file as the multipart
 * `file` part, streamed (neither side holds the file in memory). Resolves to
 * the video, in VideoStatus.PROCESSING; follow it with waitVideo.
 *
 * Rejects with a FlockError: 400 invalid_argument (not a video, empty),
 * 401 unauthenticated, 413 resource_exhausted (past the size limit),
 * 429 resource_exhausted (upload rate; see retryAfterSeconds),
 * 503 unavailable (the instance cannot process video).
 */
export async function uploadVideo(opts: UploadOptions): Promise<Video> {
  const { baseUrl, accessToken, file, filename = "video", signal } = opts;
  const f = opts.fetch ?? globalThis.fetch;
  const form = new FormData();
  form.append("file", file, filename);
  const res = await f(`${base(baseUrl)}/api/posts/videos/`, {
    method: "POST",
    headers: { Authorization: `Bearer ${accessToken}` },
    body: form,
    signal,
  });
  if (res.status !== 202) throw await failure(res);
  return parseVideo(await res.json());
}

/**
 * Reads a video over REST: GET /api/posts/videos/{id}/ (the GetVideo RPC).
 * Rejects with a FlockError: 404 not_found when it does not exist or the
 * caller may not see it, 401 unauthenticated.
 */
export async function getVideo(opts: VideoOptions): Promise<Video> {
  const f = opts.fetch ?? globalThis.fetch;
  const res = await f(`${base(opts.baseUrl)}/api/posts/videos/${encodeURIComponent(opts.videoId)}/`, {
    headers: { Authorization: `Bearer ${opts.accessToken}` },
    signal: opts.signal,
  });
  if (!res.ok) throw await failure(res);
  return parseVideo(await res.json());
}

/**
 * Polls a video until it is no longer processing and resolves to it, ready
 * (playbackUrl set) or failed (see failureReason). Abort with `signal` to
 * stop waiting. The access token must stay valid while it polls: the
 * client's waitVideo refreshes it as needed.
 */
export async function waitVideo(opts: WaitOptions): Promise<Video> {
  return pollVideo(() => getVideo(opts), opts.intervalMs, opts.signal);
}

/** Calls get every intervalMs until the video is no longer processing. */
export async function pollVideo(get: () => Promise<Video>, intervalMs = 1000, signal?: AbortSignal): Promise<Video> {
  for (;;) {
    const video = await get();
    if (video.status !== VideoStatus.PROCESSING) return video;
    await sleep(intervalMs, signal);
  }
}

/** Waits ms, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
