-- The fill job takes the timelines waiting for their fill, oldest first
-- (store.BuildingTimelines): few at any time among one row per reader.
CREATE INDEX timelines_building_idx ON timelines (read_at) WHERE state = 'building';
