DROP TRIGGER IF EXISTS room_snapshots_checkpoint ON room_snapshots;
DROP FUNCTION IF EXISTS keep_room_checkpoint();
DROP TABLE IF EXISTS room_checkpoints, room_versions;
