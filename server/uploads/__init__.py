"""Audio uploads (seeds 000, 003, 004): streamed in, moved to storage by a worker, analysed."""
