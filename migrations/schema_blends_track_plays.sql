-- Blends: each user's own plays of catalog tracks, a taste source for blends.
-- tracks.play_count stays the global counter; this table counts per user.
CREATE TABLE track_plays (
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    track_id uuid NOT NULL REFERENCES tracks (id) ON DELETE CASCADE,
    play_count bigint NOT NULL DEFAULT 0 CHECK (play_count >= 0),
    last_played_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, track_id)
);
CREATE INDEX idx_track_plays_track ON track_plays (track_id);
