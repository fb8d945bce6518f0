-- Follow suggestions (internal/store/suggest.go).
-- The newest accounts with an interest, read in order from the index alone,
-- so that each of the caller's topics costs a bounded scan.
CREATE INDEX user_interests_interest_user_idx ON user_interests (interest, user_id DESC);
-- Popular accounts: the most followed suggestable accounts, read in order
-- instead of sorting every user.
CREATE INDEX users_popular_idx ON users (followers_count DESC, id DESC)
    WHERE suspended_at IS NULL AND email_verified_at IS NOT NULL;
