-- A named version is made by a client message with an op id: re-sending it (after a
-- reconnect) must not name the state twice.
ALTER TABLE room_versions ADD COLUMN op_id varchar(64);
CREATE UNIQUE INDEX idx_room_versions_op_id ON room_versions (room_id, author_id, op_id);
