"""Mashups: co-edited timelines of clips from uploaded tracks, with live previews."""
