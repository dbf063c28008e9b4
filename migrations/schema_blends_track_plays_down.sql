DROP TABLE IF EXISTS track_plays;
