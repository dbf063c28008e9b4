"""The music catalog (seed 001): tracks with sections, creators, instruments and samples."""
