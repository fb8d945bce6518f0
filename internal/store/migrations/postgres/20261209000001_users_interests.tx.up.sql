-- A user's interests, sorted, as a JSON array beside the rows of
-- user_interests (which the suggestions read by topic): GetUser reads a
-- user in one row, without a subquery and its aggregate on every GetMe
-- (11-20 % of Postgres's CPU for it). UpdateUser writes both in one
-- transaction; nothing else writes either.
ALTER TABLE users ADD COLUMN interests TEXT NOT NULL DEFAULT '[]';
UPDATE users AS u SET interests = i.list
  FROM (SELECT user_id, json_agg(interest ORDER BY interest)::text AS list FROM user_interests GROUP BY user_id) AS i
  WHERE i.user_id = u.id;
