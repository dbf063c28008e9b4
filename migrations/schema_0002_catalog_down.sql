DROP TRIGGER IF EXISTS track_creators_split_total ON track_creators;
DROP FUNCTION IF EXISTS check_track_split_total();
DROP INDEX IF EXISTS idx_release_tracks_release;
DROP INDEX IF EXISTS idx_release_tracks_upload;
DROP INDEX IF EXISTS idx_track_tempo_desc;
DROP INDEX IF EXISTS idx_track_tempo_asc;
DROP INDEX IF EXISTS idx_track_release_desc;
DROP INDEX IF EXISTS idx_track_release_asc;
DROP INDEX IF EXISTS idx_track_popularity_id;
