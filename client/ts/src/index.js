// Helpers for the parts of the Flock API that are plain HTTP rather than
// RPCs: the video upload (multipart/form-data, streamed by fetch) and
// waiting for a video's processing. They run in browsers and in Node 20+
// (global fetch, FormData and Blob); no dependencies.

/** An error answered by the Flock server: its Connect code and HTTP status. */
export class FlockError extends Error {
  /**
   * @param {number} status HTTP status
   * @param {string} code Connect code name, e.g. "resource_exhausted"
   * @param {string} message the server's message
   */
  constructor(status, code, message) {
    super(message);
    this.name = "FlockError";
    this.status = status;
    this.code = code;
  }
}

const codeNames = {
  1: "canceled", 2: "unknown", 3: "invalid_argument", 4: "deadline_exceeded", 5: "not_found",
  6: "already_exists", 7: "permission_denied", 8: "resource_exhausted", 9: "failed_precondition",
  10: "aborted", 11: "out_of_range", 12: "unimplemented", 13: "internal", 14: "unavailable",
  15: "data_loss", 16: "unauthenticated",
};

async function fail(res) {
  let body = {};
  try {
    body = await res.json();
  } catch {
    // not JSON: keep the status alone
  }
  const code = typeof body.code === "number" ? codeNames[body.code] ?? "unknown" : String(body.code ?? "unknown");
  return new FlockError(res.status, code, body.message ?? `HTTP ${res.status}`);
}

function base(url) {
  return String(url).replace(/\/+$/, "");
}

/**
 * Uploads a video: POST /api/posts/videos/ with the file as the multipart
 * `file` part. Resolves to the video (status VIDEO_STATUS_PROCESSING).
 * @param {import("./index.d.ts").UploadOptions} opts
 */
export async function uploadVideo({ baseUrl, accessToken, file, filename = "video", signal, fetch: f = globalThis.fetch }) {
  const form = new FormData();
  form.append("file", file, filename);
  const res = await f(`${base(baseUrl)}/api/posts/videos/`, {
    method: "POST",
    headers: { Authorization: `Bearer ${accessToken}` },
    body: form,
    signal,
  });
  if (res.status !== 202) throw await fail(res);
  return (await res.json()).video;
}

/**
 * Fetches a video: GET /api/posts/videos/{id}/ (RPC GetVideo).
 * @param {import("./index.d.ts").VideoOptions} opts
 */
export async function getVideo({ baseUrl, accessToken, videoId, signal, fetch: f = globalThis.fetch }) {
  const res = await f(`${base(baseUrl)}/api/posts/videos/${encodeURIComponent(videoId)}/`, {
    headers: { Authorization: `Bearer ${accessToken}` },
    signal,
  });
  if (!res.ok) throw await fail(res);
  return (await res.json()).video;
}

/**
 * Polls a video until it is no longer processing; resolves to it, ready or
 * failed (see failureReason). Abort with `signal` to stop waiting.
 * @param {import("./index.d.ts").WaitOptions} opts
 */
export async function waitVideo({ intervalMs = 1000, ...opts }) {
  for (;;) {
    const video = await getVideo(opts);
    if (video.status !== "VIDEO_STATUS_PROCESSING") return video;
    await new Promise((resolve, reject) => {
      const t = setTimeout(resolve, intervalMs);
      opts.signal?.addEventListener("abort", () => {
        clearTimeout(t);
        reject(opts.signal.reason);
      }, { once: true });
    });
  }
}
