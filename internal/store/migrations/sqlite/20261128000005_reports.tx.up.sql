-- Reports: a user's complaint about a post, for staff to resolve. post_id
-- has no foreign key: a report outlives the post it names (REMOVE_POST
-- deletes the post and keeps the report as the record of what staff did).
CREATE TABLE reports (
    id             TEXT PRIMARY KEY,
    post_id        TEXT NOT NULL,
    post_author_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    reporter_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    reason         TEXT NOT NULL,
    details        TEXT NOT NULL DEFAULT '',
    status         TEXT NOT NULL CHECK (status IN ('open', 'resolved')),
    -- dismiss, remove_post or suspend_author; NULL while open.
    action         TEXT,
    -- The staff member who resolved it; kept without a foreign key, as a record.
    resolved_by_id TEXT,
    created_at     TIMESTAMP NOT NULL,
    resolved_at    TIMESTAMP
);
-- One open report per reporter per post: reporting again returns it.
CREATE UNIQUE INDEX reports_open_reporter_post_key ON reports (reporter_id, post_id) WHERE status = 'open';
-- ListReports: each status newest first (open ones are listed before resolved ones).
CREATE INDEX reports_status_id_idx ON reports (status, id DESC);
-- ResolveReport: the other open reports of the same post.
CREATE INDEX reports_post_id_idx ON reports (post_id, status);
