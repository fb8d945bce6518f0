-- Uploaded videos (internal/store/videos.go). A video belongs to its
-- uploader until a post carries it; its files live in media storage under
-- videos/<id>/ and are removed with the row (internal/video).
CREATE TABLE videos (
    id               TEXT PRIMARY KEY,
    owner_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status           TEXT NOT NULL, -- processing, ready, failed
    failure_reason   TEXT NOT NULL DEFAULT '',
    content_type     TEXT NOT NULL, -- sniffed from the upload
    original_bytes   INTEGER NOT NULL,
    size_bytes       INTEGER NOT NULL DEFAULT 0, -- of the playable file
    duration_seconds REAL NOT NULL DEFAULT 0,
    width            INTEGER NOT NULL DEFAULT 0,
    height           INTEGER NOT NULL DEFAULT 0,
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL
);
-- A user's videos, and the rescue of processing ones whose job was lost.
CREATE INDEX videos_owner_idx ON videos (owner_id, id);
CREATE INDEX videos_processing_idx ON videos (updated_at) WHERE status = 'processing';
-- A video is carried by at most one post; the media handler finds it by video.
CREATE UNIQUE INDEX posts_video_id_idx ON posts (video_id) WHERE video_id IS NOT NULL;
