-- A user's interests, sorted, as a JSON array beside the rows of
-- user_interests (the Postgres migration of the same name says why).
ALTER TABLE users ADD COLUMN interests TEXT NOT NULL DEFAULT '[]';
UPDATE users SET interests = (SELECT json_group_array(interest) FROM
    (SELECT ui.interest FROM user_interests AS ui WHERE ui.user_id = users.id ORDER BY ui.interest))
  WHERE id IN (SELECT user_id FROM user_interests);
