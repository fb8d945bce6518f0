// Managing an account beyond the RPCs: the data export, which is plain HTTP
// (GET /api/users/export/ answers a zip, streamed), as the video upload is.

import { FlockError, failure, type HttpOptions } from "./video.js";

/**
 * Starts downloading the account's data export: GET /api/users/export/
 * with the access token. Resolves, once the server has begun to answer, to
 * the Response, whose body streams the zip (application/zip; see
 * docs/accounts.md for its files); nothing is held in memory until you read
 * it. In a browser, `await (await downloadExport(opts)).blob()` gives a Blob
 * for a download link; in Node, pipe `res.body` to a file. A body that ends
 * in an error means the server broke the download off: the zip is
 * incomplete, never silently short.
 *
 * Rejects with a FlockError: 401 unauthenticated, 429 resource_exhausted
 * (3 exports an hour; see retryAfterSeconds), 503 unavailable (the server
 * runs too many exports; retry later).
 */
export async function downloadExport(opts: HttpOptions): Promise<Response> {
  const f = opts.fetch ?? globalThis.fetch;
  const res = await f(`${String(opts.baseUrl).replace(/\/+$/, "")}/api/users/export/`, {
    headers: { Authorization: `Bearer ${opts.accessToken}` },
    signal: opts.signal,
  });
  if (res.status !== 200) throw await failure(res);
  return res;
}

/** The file name the server suggests for an export response (Content-Disposition), or a default. */
export function exportFilename(res: Response): string {
  const m = /filename="([^"]+)"/.exec(res.headers.get("Content-Disposition") ?? "");
  return m?.[1] ?? "flock-export.zip";
}

export { FlockError };
