-- Deeper analysis of uploads: bars and sections, stems and waveform peaks (issue 12).
-- structure: dsp.structure.Structure as JSON (null until analysed, or for old uploads).
-- peaks: dsp.structure.Peaks as JSON, served by GET /uploads/{id}/peaks.
-- harmonic_storage_key / percussive_storage_key: the stems in storage (FLAC).
ALTER TABLE uploaded_tracks
    ADD COLUMN structure JSONB,
    ADD COLUMN peaks JSONB,
    ADD COLUMN harmonic_storage_key VARCHAR(512),
    ADD COLUMN percussive_storage_key VARCHAR(512),
    ADD CONSTRAINT uploaded_tracks_stems_together CHECK (
        (harmonic_storage_key IS NULL) = (percussive_storage_key IS NULL)
    );
