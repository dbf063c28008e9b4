DROP INDEX IF EXISTS idx_room_versions_op_id;
ALTER TABLE room_versions DROP COLUMN IF EXISTS op_id;
