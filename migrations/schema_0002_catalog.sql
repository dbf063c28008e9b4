-- Catalog, uploads and releases: keyset-pagination indexes and the creator split rule.

-- Keyset pagination orders by (sort key, id). NULL release dates and tempos sort last in
-- both directions, so the sort key replaces NULL by a sentinel that is direction-specific;
-- each index serves its direction by a forward or a backward scan.
CREATE INDEX idx_track_popularity_id ON tracks (popularity_score, id);
CREATE INDEX idx_track_release_asc ON tracks ((coalesce(release_date, DATE '9999-12-31')), id);
CREATE INDEX idx_track_release_desc ON tracks ((coalesce(release_date, DATE '0001-01-01')), id);
CREATE INDEX idx_track_tempo_asc ON tracks ((coalesce(tempo, 32767)), id);
CREATE INDEX idx_track_tempo_desc ON tracks ((coalesce(tempo, -1)), id);

-- A release moves from processing to review when its last upload is analysed.
CREATE INDEX idx_release_tracks_upload ON release_tracks (uploaded_track_id)
    WHERE uploaded_track_id IS NOT NULL;
CREATE INDEX idx_release_tracks_release ON release_tracks (release_id, track_order);

-- The creators' split percentages of one track add up to at most 100 %. The API checks
-- this too (with a clear error); the trigger keeps the rule true for every writer. It is
-- deferred to commit so a transaction may replace all creators of a track at once, and it
-- locks the track row so two concurrent writers cannot each pass with half of the total.
CREATE FUNCTION check_track_split_total() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    total numeric;
BEGIN
    PERFORM 1 FROM tracks WHERE id = NEW.track_id FOR UPDATE;
    SELECT coalesce(sum(split_percentage), 0) INTO total
    FROM track_creators WHERE track_id = NEW.track_id;
    IF total > 100 THEN
        RAISE EXCEPTION 'creator splits of track % add up to % percent', NEW.track_id, total
            USING ERRCODE = 'check_violation', CONSTRAINT = 'track_creators_split_total';
    END IF;
    RETURN NULL;
END;
$$;
CREATE CONSTRAINT TRIGGER track_creators_split_total
    AFTER INSERT OR UPDATE OF split_percentage, track_id ON track_creators
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION check_track_split_total();
