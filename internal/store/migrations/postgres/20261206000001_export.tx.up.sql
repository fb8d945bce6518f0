-- Account export (internal/export) reads a user's comments in id order,
-- page by page: with the author's comments in id order in the index, each
-- page is a short range scan instead of a sort of all their comments.
DROP INDEX comments_author_id_idx;
CREATE INDEX comments_author_id_idx ON comments (author_id, id);
