"""Playlists (seeds 001, 003): public or private, optionally collaborative."""
