ALTER TABLE uploaded_tracks
    DROP CONSTRAINT IF EXISTS uploaded_tracks_stems_together,
    DROP COLUMN IF EXISTS structure,
    DROP COLUMN IF EXISTS peaks,
    DROP COLUMN IF EXISTS harmonic_storage_key,
    DROP COLUMN IF EXISTS percussive_storage_key;
