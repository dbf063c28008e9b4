"""Blends (seed 002): share-code joins, fair woven playlists and the live blend room."""
