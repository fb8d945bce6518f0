-- Deleting an account (internal/store/delete_account.go) removes what
-- other users' rows say about it: their activity-log entries naming it
-- (follows, blocks) or its posts (likes, comments), found through these
-- indexes instead of a scan of every activity. Partial: most entries name
-- no user, and profile and group entries name no post.
CREATE INDEX activities_target_user_idx ON activities (target_user_id) WHERE target_user_id IS NOT NULL;
CREATE INDEX activities_post_idx ON activities (post_id) WHERE post_id IS NOT NULL;

-- The cascades of a deleted post (its own deletion, or its author's) and
-- of a deleted comment look up the notifications that name them: without
-- these, each deleted post or comment read the whole notifications table.
-- Whole, not partial, so that the foreign-key lookups of both engines
-- can use them whatever their plan.
CREATE INDEX notifications_post_idx ON notifications (post_id);
CREATE INDEX notifications_comment_idx ON notifications (comment_id);
