/** An uploaded video, as the REST API returns it (flock.v1.Video in JSON). */
export interface Video {
  id: string;
  status: "VIDEO_STATUS_PROCESSING" | "VIDEO_STATUS_READY" | "VIDEO_STATUS_FAILED";
  durationSeconds: number;
  width: number;
  height: number;
  /** int64 in JSON: a string. */
  sizeBytes: string;
  /** Plays in a <video> element without an Authorization header; signed unless public. */
  playbackUrl: string;
  posterUrl: string;
  failureReason: string;
  createdAt: string;
}

/** An error answered by the Flock server. */
export declare class FlockError extends Error {
  constructor(status: number, code: string, message: string);
  /** HTTP status, e.g. 413 for a file past the limit. */
  readonly status: number;
  /** Connect code name, e.g. "resource_exhausted", "invalid_argument". */
  readonly code: string;
}

interface Common {
  /** e.g. "http://127.0.0.1:8080" */
  baseUrl: string;
  accessToken: string;
  signal?: AbortSignal;
  fetch?: typeof globalThis.fetch;
}

export interface UploadOptions extends Common {
  /** A File from an <input>, or in Node a Blob from fs.openAsBlob (read as it is sent). */
  file: Blob;
  filename?: string;
}

export interface VideoOptions extends Common {
  videoId: string;
}

export interface WaitOptions extends VideoOptions {
  /** Poll interval, default 1000 ms. */
  intervalMs?: number;
}

export declare function uploadVideo(opts: UploadOptions): Promise<Video>;
export declare function getVideo(opts: VideoOptions): Promise<Video>;
export declare function waitVideo(opts: WaitOptions): Promise<Video>;
