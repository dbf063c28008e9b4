"""Wire schemas of uploads."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

import msgspec

from dsp.structure import Structure

UploadStatus = Literal["pending", "uploading", "uploaded", "failed"]
AnalysisStatus = Literal["pending", "analyzing", "completed", "failed"]
JobStatus = Literal["pending", "uploading", "completed", "failed"]


class Upload(msgspec.Struct):
    id: uuid.UUID
    original_filename: str
    file_size_bytes: int
    mime_type: str
    format: str
    # pending -> uploading -> uploaded (in storage), or failed after every retry.
    upload_status: UploadStatus
    # pending -> analyzing -> completed | failed; starts once the file is in storage.
    analysis_status: AnalysisStatus
    bpm: float | None
    key_signature: str | None
    duration_seconds: float | None
    # True once the analysis has stored the harmonic and percussive stems (clips may then
    # play "stem": "harmonic" | "percussive" from them).
    has_stems: bool
    # The full analysis (beats, confidences, loudness, notes) once completed;
    # {"error": ...} if failed.
    analysis: dict[str, Any]
    # Bars, sections and repetition groups (dsp.structure.Structure), once analysed.
    structure: Structure | None
    # GET this for the waveform peaks once analysed (null before).
    peaks_url: str | None
    job_status: JobStatus | None
    retry_count: int
    next_attempt_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime


class UploadPage(msgspec.Struct):
    items: list[Upload]
    next_cursor: str | None
