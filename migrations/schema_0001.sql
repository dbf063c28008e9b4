-- Blendtune initial schema: the merged data model of DESIGN.md.
-- One PostgreSQL schema (public); the seeds' meekah/auth/users schemas are folded into it.
-- Timestamps are timestamptz (UTC); keys are UUIDs from gen_random_uuid().

-- ---------------------------------------------------------------- enums
CREATE TYPE user_role AS ENUM ('user', 'artist', 'admin', 'moderator');
CREATE TYPE outbox_status AS ENUM ('pending', 'sent', 'failed');
CREATE TYPE release_status AS ENUM ('draft', 'processing', 'pending_review', 'published', 'rejected');
CREATE TYPE upload_status AS ENUM ('pending', 'uploading', 'uploaded', 'failed');
CREATE TYPE analysis_status AS ENUM ('pending', 'analyzing', 'completed', 'failed');
CREATE TYPE upload_job_kind AS ENUM ('audio', 'cover_art');
CREATE TYPE upload_job_status AS ENUM ('pending', 'uploading', 'completed', 'failed');
CREATE TYPE generation_status AS ENUM ('pending', 'generating', 'completed', 'failed');
CREATE TYPE provider AS ENUM ('spotify', 'apple');
CREATE TYPE time_range AS ENUM ('short_term', 'medium_term', 'long_term');
CREATE TYPE blend_status AS ENUM ('pending', 'processing', 'completed');
CREATE TYPE participant_status AS ENUM ('pending', 'accepted', 'declined');
CREATE TYPE mashup_role AS ENUM ('owner', 'editor', 'viewer');

-- ---------------------------------------------------------------- accounts (seeds 001, 003, 004)
CREATE TABLE users (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email varchar(255) NOT NULL CHECK (email ~ '^[^@\s]+@[^@\s]+$'),
    username varchar(100) NOT NULL CHECK (length(username) BETWEEN 1 AND 100),
    password_hash varchar(255) NOT NULL,
    artist_name varchar(255),
    email_verified boolean NOT NULL DEFAULT false,
    email_verified_at timestamptz,
    failed_login_attempts integer NOT NULL DEFAULT 0 CHECK (failed_login_attempts >= 0),
    locked_until timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (email_verified = (email_verified_at IS NOT NULL))
);
CREATE UNIQUE INDEX idx_users_email ON users (lower(email));
CREATE UNIQUE INDEX idx_users_username ON users (lower(username));
CREATE INDEX idx_users_verified ON users (email_verified);
CREATE INDEX idx_users_created_at ON users (created_at);

CREATE TABLE profiles (
    user_id uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    first_name varchar(100),
    last_name varchar(100),
    display_name varchar(100),
    bio text CHECK (length(bio) <= 2000),
    avatar_url varchar(500),
    country varchar(100),
    timezone varchar(100),
    language varchar(10) NOT NULL DEFAULT 'en',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_profiles_display_name ON profiles (display_name);

CREATE TABLE user_roles (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role user_role NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT now(),
    granted_by uuid REFERENCES users (id) ON DELETE SET NULL,
    UNIQUE (user_id, role)
);
CREATE INDEX idx_user_roles_role ON user_roles (role);

-- Session tokens are stored only as SHA-256 hashes (seed 003).
CREATE TABLE sessions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    ip_address inet,
    user_agent text,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    last_activity timestamptz NOT NULL DEFAULT now(),
    CHECK (expires_at > created_at)
);
CREATE INDEX idx_sessions_user ON sessions (user_id);
CREATE INDEX idx_sessions_expires ON sessions (expires_at);

CREATE TABLE email_verifications (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz
);
CREATE INDEX idx_email_verifications_user ON email_verifications (user_id);
CREATE INDEX idx_email_verifications_expires ON email_verifications (expires_at);

CREATE TABLE password_resets (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz
);
CREATE INDEX idx_password_resets_user ON password_resets (user_id);
CREATE INDEX idx_password_resets_expires ON password_resets (expires_at);

-- Every email is stored here first and sent by a background sender (accounts issue).
CREATE TABLE email_outbox (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid REFERENCES users (id) ON DELETE CASCADE,
    to_address varchar(255) NOT NULL,
    subject varchar(255) NOT NULL,
    body text NOT NULL,
    status outbox_status NOT NULL DEFAULT 'pending',
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz
);
CREATE INDEX idx_email_outbox_pending ON email_outbox (created_at) WHERE status = 'pending';
CREATE INDEX idx_email_outbox_user ON email_outbox (user_id);

-- ---------------------------------------------------------------- catalog (seed 001 track_info and children)
CREATE TABLE tracks (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_by uuid REFERENCES users (id) ON DELETE CASCADE,
    title varchar(255) NOT NULL CHECK (length(title) >= 1),
    artist varchar(255),
    duration integer NOT NULL CHECK (duration > 0),
    tempo integer CHECK (tempo BETWEEN 20 AND 400),
    musical_key varchar(10) CHECK (musical_key IN
        ('C', 'C#', 'Db', 'D', 'D#', 'Eb', 'E', 'F', 'F#', 'Gb', 'G', 'G#', 'Ab', 'A', 'A#', 'Bb', 'B')),
    scale varchar(10) CHECK (scale IN ('major', 'minor')),
    genre varchar(100),
    subgenre varchar(100),
    mood varchar(255)[] NOT NULL DEFAULT '{}',
    tags varchar(100)[] NOT NULL DEFAULT '{}',
    description text,
    audio_filename varchar(255) NOT NULL UNIQUE,
    cover_art_url varchar(500),
    catalog_number varchar(50),
    isrc varchar(20),
    release_date date,
    popularity_score numeric(5, 2) NOT NULL DEFAULT 0 CHECK (popularity_score BETWEEN 0 AND 100),
    play_count bigint NOT NULL DEFAULT 0 CHECK (play_count >= 0),
    search tsvector GENERATED ALWAYS AS
        (to_tsvector('simple', coalesce(title, '') || ' ' || coalesce(artist, ''))) STORED,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_track_genre ON tracks (genre);
CREATE INDEX idx_track_tempo ON tracks (tempo);
CREATE INDEX idx_track_key ON tracks (musical_key);
CREATE INDEX idx_track_scale ON tracks (scale);
CREATE INDEX idx_track_release_date ON tracks (release_date);
CREATE INDEX idx_track_mood ON tracks USING gin (mood);
CREATE INDEX idx_track_tags ON tracks USING gin (tags);
CREATE INDEX idx_track_filters ON tracks (genre, tempo, musical_key);
CREATE INDEX idx_track_search ON tracks USING gin (search);
CREATE INDEX idx_track_popularity ON tracks (popularity_score DESC, id);
CREATE INDEX idx_track_created_by ON tracks (created_by);
CREATE INDEX idx_track_isrc ON tracks (isrc) WHERE isrc IS NOT NULL;

CREATE TABLE track_sections (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    track_id uuid NOT NULL REFERENCES tracks (id) ON DELETE CASCADE,
    section_name varchar(50) NOT NULL,
    start_time integer NOT NULL CHECK (start_time >= 0),
    end_time integer NOT NULL,
    description text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (end_time > start_time)
);
CREATE INDEX idx_arrangement_track ON track_sections (track_id);
CREATE INDEX idx_arrangement_section ON track_sections (section_name);

CREATE TABLE track_creators (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    track_id uuid NOT NULL REFERENCES tracks (id) ON DELETE CASCADE,
    creator_name varchar(255) NOT NULL,
    role varchar(100),
    ipi_number varchar(20),
    pro varchar(100),
    split_percentage numeric(5, 2) CHECK (split_percentage BETWEEN 0 AND 100),
    contact_email varchar(255),
    contact_phone varchar(50),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_creator_track ON track_creators (track_id);
CREATE INDEX idx_creator_name ON track_creators (creator_name);
CREATE INDEX idx_creator_ipi ON track_creators (ipi_number);

CREATE TABLE track_instruments (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    track_id uuid NOT NULL REFERENCES tracks (id) ON DELETE CASCADE,
    instrument_category varchar(100),
    instrument_type varchar(100),
    is_primary boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_instrument_track ON track_instruments (track_id);
CREATE INDEX idx_instrument_category ON track_instruments (instrument_category);
CREATE INDEX idx_instrument_primary ON track_instruments (track_id) WHERE is_primary;

CREATE TABLE track_samples (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    track_id uuid NOT NULL REFERENCES tracks (id) ON DELETE CASCADE,
    sample_pack_name varchar(255),
    sample_description text,
    is_cleared boolean NOT NULL DEFAULT false,
    clearance_notes text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_sample_track ON track_samples (track_id);
CREATE INDEX idx_sample_uncleared ON track_samples (track_id) WHERE NOT is_cleared;

-- ---------------------------------------------------------------- uploads (seeds 000, 003, 004)
CREATE TABLE uploaded_tracks (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    original_filename varchar(255) NOT NULL,
    storage_key varchar(512),
    file_size_bytes bigint NOT NULL CHECK (file_size_bytes > 0),
    mime_type varchar(50) NOT NULL,
    format varchar(10) NOT NULL CHECK (format IN ('wav', 'flac', 'mp3', 'ogg')),
    upload_status upload_status NOT NULL DEFAULT 'pending',
    analysis_status analysis_status NOT NULL DEFAULT 'pending',
    bpm numeric(5, 2) CHECK (bpm > 0),
    key_signature varchar(20),
    duration_seconds numeric(9, 2) CHECK (duration_seconds > 0),
    has_stems boolean NOT NULL DEFAULT false,
    analysis jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(analysis) = 'object'),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (upload_status <> 'uploaded' OR storage_key IS NOT NULL)
);
CREATE INDEX idx_uploaded_tracks_user_id ON uploaded_tracks (user_id, created_at DESC);
CREATE INDEX idx_uploaded_tracks_analysis_pending ON uploaded_tracks (created_at)
    WHERE analysis_status IN ('pending', 'analyzing');
CREATE INDEX idx_uploaded_tracks_analysis ON uploaded_tracks USING gin (analysis);

-- A received file is never lost: the job keeps the local path until the move succeeded (seed 004).
CREATE TABLE upload_jobs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind upload_job_kind NOT NULL,
    target_id uuid NOT NULL,
    uploaded_track_id uuid REFERENCES uploaded_tracks (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    local_path text NOT NULL,
    status upload_job_status NOT NULL DEFAULT 'pending',
    retry_count integer NOT NULL DEFAULT 0 CHECK (retry_count >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    error_log text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_upload_jobs_due ON upload_jobs (next_attempt_at) WHERE status IN ('pending', 'uploading');
CREATE INDEX idx_upload_jobs_target ON upload_jobs (target_id);

-- ---------------------------------------------------------------- releases (seed 004)
CREATE TABLE releases (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    artist_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title varchar(255) NOT NULL CHECK (length(title) >= 1),
    genre varchar(100) NOT NULL,
    cover_art_url varchar(500),
    status release_status NOT NULL DEFAULT 'draft',
    rejection_reason text,
    submitted_at timestamptz,
    reviewed_at timestamptz,
    reviewed_by uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- Completeness (seed 004): nothing reaches review without cover art; a rejection has a reason.
    CHECK (status IN ('draft', 'processing') OR cover_art_url IS NOT NULL),
    CHECK (status <> 'rejected' OR rejection_reason IS NOT NULL)
);
CREATE INDEX idx_releases_artist ON releases (artist_id);
CREATE INDEX idx_releases_pending_review ON releases (submitted_at) WHERE status = 'pending_review';

CREATE TABLE release_tracks (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    release_id uuid NOT NULL REFERENCES releases (id) ON DELETE CASCADE,
    uploaded_track_id uuid REFERENCES uploaded_tracks (id) ON DELETE SET NULL,
    title varchar(255) NOT NULL CHECK (length(title) >= 1),
    audio_url varchar(512),
    duration_seconds numeric(9, 2) NOT NULL CHECK (duration_seconds > 0),
    track_order integer NOT NULL CHECK (track_order >= 1),
    isrc varchar(20),
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Deferrable so that a reorder can swap two numbers inside one transaction.
    CONSTRAINT release_tracks_order_unique UNIQUE (release_id, track_order) DEFERRABLE INITIALLY IMMEDIATE
);

-- ---------------------------------------------------------------- playlists (seeds 001, 003)
CREATE TABLE playlists (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name varchar(255) NOT NULL CHECK (length(name) >= 1),
    description text,
    is_public boolean NOT NULL DEFAULT false,
    is_collaborative boolean NOT NULL DEFAULT false,
    cover_image_url varchar(500),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_playlists_user ON playlists (user_id);
CREATE INDEX idx_playlists_public ON playlists (created_at) WHERE is_public;

CREATE TABLE playlist_collaborators (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    playlist_id uuid NOT NULL REFERENCES playlists (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    added_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (playlist_id, user_id)
);
CREATE INDEX idx_playlist_collaborators_user ON playlist_collaborators (user_id);

CREATE TABLE playlist_tracks (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    playlist_id uuid NOT NULL REFERENCES playlists (id) ON DELETE CASCADE,
    track_id uuid NOT NULL REFERENCES tracks (id) ON DELETE CASCADE,
    position integer NOT NULL CHECK (position >= 0),
    added_by uuid REFERENCES users (id) ON DELETE SET NULL,
    added_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT playlist_tracks_once UNIQUE (playlist_id, track_id)
);
CREATE INDEX idx_playlist_tracks_track ON playlist_tracks (track_id);
CREATE INDEX idx_playlist_tracks_position ON playlist_tracks (playlist_id, position);

-- ---------------------------------------------------------------- blends (seed 002)
CREATE TABLE provider_connections (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider provider NOT NULL,
    provider_user_id varchar(255) NOT NULL,
    -- AES-256-GCM: 12-byte nonce || ciphertext || 16-byte tag.
    access_token_encrypted bytea NOT NULL,
    refresh_token_encrypted bytea,
    token_expires_at timestamptz,
    provider_metadata jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(provider_metadata) = 'object'),
    last_sync_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, provider)
);
CREATE INDEX idx_provider_connections_metadata ON provider_connections USING gin (provider_metadata);

CREATE TABLE user_top_tracks (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    connection_id uuid NOT NULL REFERENCES provider_connections (id) ON DELETE CASCADE,
    track_id varchar(255) NOT NULL,
    track_name varchar(500) NOT NULL,
    artist_name varchar(500) NOT NULL,
    album_name varchar(500),
    album_art_url varchar(500),
    duration_ms integer CHECK (duration_ms > 0),
    isrc varchar(20),
    track_metadata jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(track_metadata) = 'object'),
    time_range time_range NOT NULL,
    rank integer NOT NULL CHECK (rank >= 1),
    fetched_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (connection_id, time_range, rank)
);
CREATE INDEX idx_user_top_tracks_connection_time_range ON user_top_tracks (connection_id, time_range);
CREATE INDEX idx_user_top_tracks_isrc ON user_top_tracks (isrc) WHERE isrc IS NOT NULL;
CREATE INDEX idx_user_top_tracks_metadata ON user_top_tracks USING gin (track_metadata);

CREATE TABLE blends (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_by uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name varchar(100) NOT NULL CHECK (length(name) >= 1),
    -- The current share code; NULL once revoked. Rotation replaces it.
    share_code varchar(16) UNIQUE,
    share_code_expires_at timestamptz,
    status blend_status NOT NULL DEFAULT 'pending',
    blend_settings jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(blend_settings) = 'object'),
    taste_match jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(taste_match) = 'object'),
    playlist_spotify_id varchar(255),
    playlist_apple_id varchar(255),
    created_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    CHECK ((share_code IS NULL) = (share_code_expires_at IS NULL))
);
CREATE INDEX idx_blends_created_by ON blends (created_by);
CREATE INDEX idx_blends_settings ON blends USING gin (blend_settings);

CREATE TABLE blend_participants (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    blend_id uuid NOT NULL REFERENCES blends (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status participant_status NOT NULL DEFAULT 'pending',
    joined_at timestamptz,
    UNIQUE (blend_id, user_id)
);
CREATE INDEX idx_blend_participants_user_id ON blend_participants (user_id);
CREATE INDEX idx_blend_participants_accepted ON blend_participants (blend_id) WHERE status = 'accepted';

CREATE TABLE blend_tracks (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    blend_id uuid NOT NULL REFERENCES blends (id) ON DELETE CASCADE,
    contributed_by uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Everyone whose taste put the track here (contributed_by is the first of them).
    contributors uuid[] NOT NULL DEFAULT '{}',
    track_id varchar(255) NOT NULL,
    track_name varchar(500) NOT NULL,
    artist_name varchar(500) NOT NULL,
    album_name varchar(500),
    album_art_url varchar(500),
    duration_ms integer CHECK (duration_ms > 0),
    isrc varchar(20),
    position integer NOT NULL CHECK (position >= 0),
    source_provider varchar(50) NOT NULL,
    added_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT blend_tracks_position_unique UNIQUE (blend_id, position) DEFERRABLE INITIALLY IMMEDIATE
);
CREATE INDEX idx_blend_tracks_contributors ON blend_tracks USING gin (contributors);

-- ---------------------------------------------------------------- mashups (seed 000)
CREATE TABLE mashups (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name varchar(255) NOT NULL CHECK (length(name) >= 1),
    target_duration_seconds integer NOT NULL CHECK (target_duration_seconds > 0),
    output_storage_key varchar(512),
    generation_status generation_status NOT NULL DEFAULT 'pending',
    share_code varchar(16) UNIQUE,
    share_code_expires_at timestamptz,
    playback_count integer NOT NULL DEFAULT 0 CHECK (playback_count >= 0),
    download_count integer NOT NULL DEFAULT 0 CHECK (download_count >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((share_code IS NULL) = (share_code_expires_at IS NULL))
);
CREATE INDEX idx_mashups_user_id ON mashups (user_id);

CREATE TABLE mashup_members (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    mashup_id uuid NOT NULL REFERENCES mashups (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role mashup_role NOT NULL DEFAULT 'editor',
    joined_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (mashup_id, user_id)
);
CREATE INDEX idx_mashup_members_user ON mashup_members (user_id);

CREATE TABLE mashup_input_tracks (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    mashup_id uuid NOT NULL REFERENCES mashups (id) ON DELETE CASCADE,
    uploaded_track_id uuid NOT NULL REFERENCES uploaded_tracks (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (mashup_id, uploaded_track_id)
);
CREATE INDEX idx_mashup_input_tracks_track ON mashup_input_tracks (uploaded_track_id);

-- ---------------------------------------------------------------- rooms (the durable side of room state)
-- A room's id is the id of the blend or mashup it belongs to; kinds are pluggable, hence no enum.
CREATE TABLE rooms (
    id uuid PRIMARY KEY,
    kind varchar(32) NOT NULL,
    seq bigint NOT NULL DEFAULT 0 CHECK (seq >= 0),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The op log: one row per accepted batch, in seq order. (room_id, author_id, op_id) makes
-- a re-sent batch idempotent.
CREATE TABLE room_ops (
    room_id uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq bigint NOT NULL CHECK (seq >= 1),
    author_id uuid,
    op_id varchar(64) NOT NULL,
    body jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (room_id, seq),
    UNIQUE (room_id, author_id, op_id)
);

CREATE TABLE room_snapshots (
    room_id uuid PRIMARY KEY REFERENCES rooms (id) ON DELETE CASCADE,
    seq bigint NOT NULL CHECK (seq >= 0),
    state jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Deleting a blend or mashup deletes its room (and, by cascade, its log and snapshot).
CREATE FUNCTION delete_owned_room() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM rooms WHERE id = OLD.id;
    RETURN OLD;
END;
$$;
CREATE TRIGGER blends_delete_room AFTER DELETE ON blends
    FOR EACH ROW EXECUTE FUNCTION delete_owned_room();
CREATE TRIGGER mashups_delete_room AFTER DELETE ON mashups
    FOR EACH ROW EXECUTE FUNCTION delete_owned_room();
