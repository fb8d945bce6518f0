// Video upload with progress: the SDK's uploadVideo uses fetch, which cannot
// report upload progress, so the app sends the same request
// (POST /api/posts/videos/, multipart "file") with XMLHttpRequest, using the
// client's access token and refreshing it once on 401 as the SDK does.
import { FlockError, type Video, VideoSchema } from "@flock-social/client";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";

import { client } from "./session.js";

function send(file: File, token: string, onProgress: (f: number) => void): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open("POST", "/api/posts/videos/");
    x.setRequestHeader("Authorization", `Bearer ${token}`);
    x.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    x.onload = () => resolve({ status: x.status, body: x.responseText });
    x.onerror = () => reject(new Error("the upload failed: network error"));
    const form = new FormData();
    form.append("file", file, file.name);
    x.send(form);
  });
}

export async function uploadWithProgress(file: File, onProgress: (f: number) => void): Promise<Video> {
  let res = await send(file, client.tokens()?.accessToken ?? "", onProgress);
  if (res.status === 401 && client.tokens()?.refreshToken) {
    await client.refresh();
    res = await send(file, client.tokens()?.accessToken ?? "", onProgress);
  }
  let body: { code?: string | number; message?: string; video?: JsonValue } = {};
  try {
    body = JSON.parse(res.body);
  } catch {
    /* not JSON */
  }
  if (res.status !== 202 || !body.video)
    throw new FlockError(res.status, typeof body.code === "string" ? body.code : "unknown", body.message || `upload failed (HTTP ${res.status})`);
  onProgress(1);
  return fromJson(VideoSchema, body.video, { ignoreUnknownFields: true });
}
