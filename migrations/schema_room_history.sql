-- Room history: named versions and checkpoints (docs/rooms.md, "History").

-- A named version: the room's whole state as it was at seq, with who named it and when. Kept
-- for as long as the room exists (the op log and snapshots are pruned; versions are not).
CREATE TABLE room_versions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    room_id uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq bigint NOT NULL CHECK (seq >= 0),
    label varchar(100) NOT NULL CHECK (length(label) >= 1),
    author_id uuid REFERENCES users (id) ON DELETE SET NULL,
    state jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_room_versions_room ON room_versions (room_id, seq);

-- Checkpoints: every snapshot the rooms core writes is kept here too, so that the state at
-- any seq still in the op log can be rebuilt (the newest checkpoint at or before it, then
-- the log). Checkpoints older than the log's first batch are useless and pruned.
CREATE TABLE room_checkpoints (
    room_id uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq bigint NOT NULL CHECK (seq >= 0),
    state jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (room_id, seq)
);

CREATE FUNCTION keep_room_checkpoint() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO room_checkpoints (room_id, seq, state) VALUES (NEW.room_id, NEW.seq, NEW.state)
        ON CONFLICT (room_id, seq) DO NOTHING;
    -- (The snapshot's own log pruning runs after this, so one useless checkpoint may stay
    -- until the next snapshot.)
    DELETE FROM room_checkpoints c
    WHERE c.room_id = NEW.room_id
      AND c.seq < (SELECT coalesce(min(o.seq), NEW.seq + 1) FROM room_ops o
                   WHERE o.room_id = NEW.room_id) - 1;
    RETURN NULL;
END;
$$;
CREATE TRIGGER room_snapshots_checkpoint AFTER INSERT OR UPDATE ON room_snapshots
    FOR EACH ROW EXECUTE FUNCTION keep_room_checkpoint();
