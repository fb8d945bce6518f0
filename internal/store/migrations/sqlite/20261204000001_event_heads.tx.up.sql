-- Event heads: the last id given to a notification or activity-log entry
-- of each user ("notifications" or "activity"). A transaction that records
-- an event locks its user's head row until it commits and takes an id above
-- the head, so each user's event ids increase in commit order: a stream that
-- has delivered id X has already seen every event below X, whatever the
-- clocks of the instances say (see CreateNotification).
CREATE TABLE event_heads (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind    TEXT NOT NULL,
    last_id TEXT NOT NULL,
    PRIMARY KEY (user_id, kind)
);
INSERT INTO event_heads (user_id, kind, last_id)
SELECT user_id, 'notifications', MAX(id) FROM notifications GROUP BY user_id;
INSERT INTO event_heads (user_id, kind, last_id)
SELECT user_id, 'activity', MAX(id) FROM activities GROUP BY user_id;
