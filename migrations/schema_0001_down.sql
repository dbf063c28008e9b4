DROP TABLE IF EXISTS room_snapshots, room_ops, rooms, mashup_input_tracks, mashup_members, mashups,
    blend_tracks, blend_participants, blends, user_top_tracks, provider_connections,
    playlist_tracks, playlist_collaborators, playlists, release_tracks, releases, upload_jobs,
    uploaded_tracks, track_samples, track_instruments, track_creators, track_sections, tracks,
    email_outbox, password_resets, email_verifications, sessions, user_roles, profiles, users CASCADE;
DROP FUNCTION IF EXISTS delete_owned_room();
DROP TYPE IF EXISTS user_role, outbox_status, release_status, upload_status, analysis_status,
    upload_job_kind, upload_job_status, generation_status, provider, time_range, blend_status,
    participant_status, mashup_role;
