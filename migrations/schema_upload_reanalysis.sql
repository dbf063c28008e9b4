-- Uploads analysed before the deeper analysis existed (schema_upload_structure.sql) have no
-- bars and sections, so a mashup cannot be generated from them (409 inputs_not_analysed).
-- Queue them for analysis again: the upload worker redoes the whole analysis and stores the
-- structure, the stems and the peaks. A completed analysis always stores a structure, so
-- this touches only those old uploads; they show `analysis_status: pending` until done.
UPDATE uploaded_tracks
SET analysis_status = 'pending', updated_at = now()
WHERE analysis_status = 'completed' AND structure IS NULL AND upload_status = 'uploaded';
