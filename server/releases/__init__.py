"""Releases (seed 004): draft -> (processing) -> pending_review -> published / rejected."""
