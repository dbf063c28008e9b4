-- Mashup generation jobs (docs/mashups.md, "Generating a draft"): one row per request to
-- generate a mashup's timeline from its inputs. A process claims a due job with
-- FOR UPDATE SKIP LOCKED and keeps its lease by touching updated_at; a job whose lease ran out
-- (its process died) is claimed again by another process that uses the same storage.
CREATE TABLE mashup_generation_jobs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    mashup_id uuid NOT NULL REFERENCES mashups (id) ON DELETE CASCADE,
    requested_by uuid REFERENCES users (id) ON DELETE SET NULL,
    seed bigint NOT NULL CHECK (seed >= 0),
    target_seconds integer NOT NULL CHECK (target_seconds > 0),
    options jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(options) = 'object'),
    -- Only processes whose storage is this one can read the inputs and store the output.
    storage_scope text NOT NULL,
    status generation_status NOT NULL DEFAULT 'pending',
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    stage varchar(32) NOT NULL DEFAULT 'queued',
    progress real NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 1),
    detail text NOT NULL DEFAULT '',
    plan jsonb,
    output_storage_key varchar(512),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    CHECK ((status IN ('completed', 'failed')) = (finished_at IS NOT NULL))
);
-- At most one job under way per mashup: a second request is refused (409) while one runs.
CREATE UNIQUE INDEX idx_mashup_generation_jobs_active ON mashup_generation_jobs (mashup_id)
    WHERE status IN ('pending', 'generating');
CREATE INDEX idx_mashup_generation_jobs_due ON mashup_generation_jobs (created_at)
    WHERE status IN ('pending', 'generating');
CREATE INDEX idx_mashup_generation_jobs_mashup ON mashup_generation_jobs (mashup_id, created_at DESC);
