"""Decoding and encoding through pedalboard's AudioFile.

Everything inside dsp works on :class:`Audio`: float32 samples shaped
``(channels, frames)`` (pedalboard's layout), stereo, at the project rate.

pedalboard zero-fills a truncated WAV, FLAC or MP3 instead of failing, so
before handing bytes to it we check the container ourselves (see
``_check_integrity``): a file that is cut short is refused as
:class:`CorruptAudio` rather than analysed as silence.
"""

from __future__ import annotations

import io
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final, Literal, get_args

import msgspec
import numpy as np
import numpy.typing as npt
from pedalboard.io import AudioFile

from dsp.errors import AudioTooLong, CorruptAudio, UnsupportedFormat

PROJECT_RATE: Final = 44100
"""Sample rate of everything dsp decodes, renders and encodes by default."""

AudioFormat = Literal["wav", "flac", "mp3", "ogg"]
FORMATS: Final[tuple[AudioFormat, ...]] = get_args(AudioFormat)

Buffer = bytes | mmap.mmap
"""What the container checks read: bytes, or a file mapped into memory."""

MIME_TYPES: Final[dict[AudioFormat, str]] = {
    "wav": "audio/wav",
    "flac": "audio/flac",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
}

# File name extensions accepted for each format; anything else is refused.
EXTENSIONS: Final[dict[str, AudioFormat]] = {
    ".wav": "wav",
    ".wave": "wav",
    ".flac": "flac",
    ".mp3": "mp3",
    ".ogg": "ogg",
    ".oga": "ogg",
}

SUPPORTED: Final = (
    "supported formats: WAV (.wav, .wave), FLAC (.flac), MP3 (.mp3), Ogg Vorbis (.ogg, .oga)"
)
_MP4_EXTENSIONS: Final = (".m4a", ".mp4", ".aac", ".alac", ".m4b")

DEFAULT_MAX_SECONDS: Final = 30 * 60.0
DEFAULT_MAX_BYTES: Final = 512 * 1024 * 1024

_MP3_RATES: Final = (32000, 44100, 48000)
_MAX_FRAMES_PER_BYTE: Final = 8192

MIN_SAMPLE_RATE: Final = 4000
MAX_SAMPLE_RATE: Final = 768_000
MAX_CHANNELS: Final = 32


@dataclass(frozen=True, slots=True, eq=False)
class Audio:
    """Decoded audio: float32 samples shaped (channels, frames) at ``sample_rate``."""

    samples: npt.NDArray[np.float32]
    sample_rate: int

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def frames(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration_seconds(self) -> float:
        return self.frames / self.sample_rate

    @property
    def nbytes(self) -> int:
        return int(self.samples.nbytes)

    @classmethod
    def silence(cls, frames: int, sample_rate: int = PROJECT_RATE, channels: int = 2) -> Audio:
        return cls(np.zeros((channels, frames), dtype=np.float32), sample_rate)


class AudioInfo(msgspec.Struct, frozen=True):
    """What a file holds, read from its header without decoding all of it."""

    format: AudioFormat
    sample_rate: int
    channels: int
    frames: int
    duration_seconds: float


# --------------------------------------------------------------------------- sniffing


def format_from_name(filename: str) -> AudioFormat:
    """Return the format a file name claims, or raise :class:`UnsupportedFormat`."""
    suffix = Path(filename).suffix.lower()
    try:
        return EXTENSIONS[suffix]
    except KeyError:
        why = " (AAC/ALAC cannot be decoded here)" if suffix in _MP4_EXTENSIONS else ""
        raise UnsupportedFormat(
            f"unsupported file extension {suffix or '(none)'!r}{why}; {SUPPORTED}"
        ) from None


def sniff_format(data: Buffer) -> AudioFormat | None:
    """Recognise a supported container from its first bytes, or return None."""
    if len(data) >= 12 and data[:4] in (b"RIFF", b"RF64") and data[8:12] == b"WAVE":
        return "wav"
    if data[:4] == b"fLaC":
        return "flac"
    if data[:4] == b"OggS":
        return "ogg"
    if data[:3] == b"ID3" or (len(data) >= 4 and _mp3_header(data, 0) is not None):
        return "mp3"
    return None


# --------------------------------------------------------------------------- integrity


def _check_integrity(data: Buffer, fmt: AudioFormat) -> None:
    if fmt == "wav":
        _check_wav(data)
    elif fmt == "flac":
        _check_flac(data)
    elif fmt == "mp3":
        _check_mp3(data)
    else:
        _check_ogg(data)


def check_format(what: str, sample_rate: int, channels: int) -> None:
    """Refuse a header that claims an impossible sample rate or channel count, naming
    it (pedalboard would fail with "Failed to open audio file-like object")."""
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise CorruptAudio(
            f"{what} header claims a sample rate of {sample_rate} Hz; "
            f"supported: {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz"
        )
    if not 1 <= channels <= MAX_CHANNELS:
        raise CorruptAudio(
            f"{what} header claims {channels} channels; supported: 1..{MAX_CHANNELS}"
        )


def _check_wav(data: Buffer) -> None:
    if data[:4] == b"RF64":
        return  # sizes live in the ds64 chunk; pedalboard validates what it reads
    pos = 12
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        if chunk_id == b"fmt " and size >= 16 and pos + 24 <= len(data):
            channels, rate = struct.unpack_from("<HI", data, pos + 10)
            check_format("WAV", rate, channels)
        if chunk_id == b"data":
            # Streaming writers that never finalised leave 0xFFFFFFFF here; pedalboard
            # would then report a billion frames, so it counts as truncated too.
            if pos + 8 + size > len(data):
                missing = pos + 8 + size - len(data)
                raise CorruptAudio(f"truncated WAV: {missing} bytes of audio data missing")
            return
        pos += 8 + size + (size & 1)
    raise CorruptAudio("WAV file has no data chunk (truncated?)")


_MP3_BITRATES_V1: Final = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_MP3_BITRATES_V2: Final = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
_MP3_RATES_BY_VERSION: Final = {
    3: (44100, 48000, 32000),
    2: (22050, 24000, 16000),
    0: (11025, 12000, 8000),
}


def _mp3_header(data: Buffer, pos: int) -> tuple[int, int] | None:
    """Parse an MPEG-1/2/2.5 Layer III frame header: (frame length, side info size)."""
    if pos + 4 > len(data):
        return None
    b0, b1, b2, b3 = data[pos], data[pos + 1], data[pos + 2], data[pos + 3]
    if b0 != 0xFF or (b1 & 0xE0) != 0xE0:
        return None
    version = (b1 >> 3) & 3
    layer = (b1 >> 1) & 3
    bitrate_index = b2 >> 4
    rate_index = (b2 >> 2) & 3
    if version == 1 or layer != 1 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    padding = (b2 >> 1) & 1
    mono = (b3 >> 6) == 3
    rate = _MP3_RATES_BY_VERSION[version][rate_index]
    if version == 3:
        length = 144_000 * _MP3_BITRATES_V1[bitrate_index] // rate + padding
        side_info = 17 if mono else 32
    else:
        length = 72_000 * _MP3_BITRATES_V2[bitrate_index] // rate + padding
        side_info = 9 if mono else 17
    return length, side_info


def _check_mp3(data: Buffer) -> None:
    pos = 0
    if data[:3] == b"ID3" and len(data) >= 10:
        size = (data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9]
        pos = 10 + size + (10 if data[5] & 0x10 else 0)
    first = _mp3_header(data, pos)
    if first is None:
        raise CorruptAudio("no MPEG audio frame found after the ID3 tag")
    declared: int | None = None
    tag_at = pos + 4 + first[1]
    if data[tag_at : tag_at + 4] in (b"Xing", b"Info") and tag_at + 12 <= len(data):
        (flags,) = struct.unpack_from(">I", data, tag_at + 4)
        if flags & 1:
            (declared,) = struct.unpack_from(">I", data, tag_at + 8)
    frames = 0
    while True:
        header = _mp3_header(data, pos)
        if header is None:
            break  # trailing tags (ID3v1, APE) or junk: stop counting here
        length = header[0]
        if pos + length > len(data):
            raise CorruptAudio("truncated MP3: the last frame is cut short")
        frames += 1
        pos += length
    # The Xing/Info frame itself carries no audio; encoders disagree on whether
    # they count it, so allow one frame of slack.
    if declared is not None and frames + 1 < declared:
        raise CorruptAudio(f"truncated MP3: {frames} of {declared} frames present")


def _check_ogg(data: Buffer) -> None:
    pos = 0
    saw_end = False
    first = True
    while pos < len(data):
        if data[pos : pos + 4] != b"OggS" or pos + 27 > len(data):
            raise CorruptAudio("damaged or truncated Ogg stream")
        header_type = data[pos + 5]
        segments = data[pos + 26]
        table_end = pos + 27 + segments
        if table_end > len(data):
            raise CorruptAudio("truncated Ogg stream")
        body = sum(data[pos + 27 : table_end])
        if first:
            if data[table_end : table_end + 7] != b"\x01vorbis":
                raise UnsupportedFormat("only Ogg Vorbis is supported (not Opus or FLAC in Ogg)")
            first = False
        if table_end + body > len(data):
            raise CorruptAudio("truncated Ogg stream: the last page is cut short")
        saw_end = saw_end or bool(header_type & 0x04)
        pos = table_end + body
    if not saw_end:
        raise CorruptAudio("truncated Ogg stream: no end-of-stream page")


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _crc16_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
        table.append(crc)
    return table


_CRC16: Final = _crc16_table()


def _crc16(data: bytes) -> int:
    crc = 0
    table = _CRC16
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ byte]
    return crc


_FLAC_BLOCK_SIZES: Final = {1: 192, 2: 576, 3: 1152, 4: 2304, 5: 4608}


def _flac_frame_header(data: Buffer, pos: int) -> tuple[int, int, bool] | None:
    """Parse a FLAC frame header at pos: (frame or sample number, block size, variable)."""
    if pos + 6 > len(data) or data[pos] != 0xFF or data[pos + 1] not in (0xF8, 0xF9):
        return None
    variable = data[pos + 1] == 0xF9
    block_code = data[pos + 2] >> 4
    rate_code = data[pos + 2] & 0x0F
    if block_code == 0 or rate_code == 15 or (data[pos + 3] & 1):
        return None
    # UTF-8-style coded frame or sample number.
    first = data[pos + 4]
    if first < 0x80:
        number, extra = first, 0
    elif 0xC0 <= first < 0xFE:
        extra = 1
        while first & (0x80 >> (extra + 1)):
            extra += 1
        number = first & (0x3F >> extra)
    else:
        return None
    cursor = pos + 5
    if cursor + extra > len(data):
        return None
    for byte in data[cursor : cursor + extra]:
        if byte & 0xC0 != 0x80:
            return None
        number = (number << 6) | (byte & 0x3F)
    cursor += extra
    if block_code == 6:
        block = data[cursor] + 1 if cursor < len(data) else 0
        cursor += 1
    elif block_code == 7:
        block = int.from_bytes(data[cursor : cursor + 2], "big") + 1
        cursor += 2
    elif block_code >= 8:
        block = 256 << (block_code - 8)
    else:
        block = _FLAC_BLOCK_SIZES[block_code]
    if rate_code == 12:
        cursor += 1
    elif rate_code in (13, 14):
        cursor += 2
    if cursor >= len(data) or _crc8(data[pos:cursor]) != data[cursor]:
        return None
    return number, block, variable


def _check_flac(data: Buffer) -> None:
    # STREAMINFO is the first metadata block: 4-byte block header then 34 bytes.
    if len(data) < 42:
        raise CorruptAudio("truncated FLAC: no STREAMINFO")
    info = data[8:42]
    packed = int.from_bytes(info[10:13], "big")
    check_format("FLAC", packed >> 4, ((packed >> 1) & 7) + 1)
    min_block = int.from_bytes(info[0:2], "big")
    max_frame = int.from_bytes(info[7:10], "big")
    total = int.from_bytes(info[13:18], "big") & 0xF_FFFF_FFFF
    # Skip the metadata blocks to find where audio frames start.
    pos = 4
    while True:
        if pos + 4 > len(data):
            raise CorruptAudio("truncated FLAC: metadata cut short")
        last = data[pos] & 0x80
        pos += 4 + int.from_bytes(data[pos + 1 : pos + 4], "big")
        if last:
            break
    end = len(data) - (128 if data[-128:-125] == b"TAG" else 0)
    if pos >= end:
        raise CorruptAudio("truncated FLAC: no audio frames")
    # The last frame must be complete: its CRC-16 covers it up to the end of file.
    window = max(max_frame, 1 << 16) + 16
    start = max(pos, end - window)
    candidate = data.rfind(b"\xff", start, end)
    while candidate >= start:
        header = _flac_frame_header(data, candidate)
        if header is not None:
            crc = int.from_bytes(data[end - 2 : end], "big")
            if _crc16(data[candidate : end - 2]) == crc:
                number, block, variable = header
                first_sample = number if variable else number * min_block
                if total and first_sample + block < total:
                    raise CorruptAudio("truncated FLAC: audio frames missing at the end")
                return
        candidate = data.rfind(b"\xff", start, candidate)
    raise CorruptAudio("truncated or damaged FLAC: the last frame is incomplete")


# --------------------------------------------------------------------------- decoding


def _prepare(data: Buffer, filename: str | None) -> AudioFormat:
    claimed = format_from_name(filename) if filename is not None else None
    if not data:
        raise CorruptAudio("empty input")
    actual = sniff_format(data)
    if actual is None:
        if claimed is not None:
            raise CorruptAudio(f"not valid {claimed} data")
        raise UnsupportedFormat("unrecognised audio format; allowed: wav, flac, mp3, ogg")
    if claimed is not None and claimed != actual:
        raise UnsupportedFormat(f"file is named .{claimed} but holds {actual} data")
    _check_integrity(data, actual)
    return actual


def _check_plausible(frames: int, size: int, fmt: AudioFormat) -> None:
    # Even digital silence costs the codecs a few bytes per thousand frames; a
    # header promising more is forged, and decoding it would allocate gigabytes.
    if frames > _MAX_FRAMES_PER_BYTE * size:
        raise CorruptAudio(f"{fmt} header claims {frames} frames in {size} bytes")


def _describe(source: io.BytesIO | BinaryIO, fmt: AudioFormat, size: int) -> AudioInfo:
    try:
        with AudioFile(source) as f:
            rate, channels, frames = int(f.samplerate), int(f.num_channels), int(f.frames)
            check_format(fmt.upper(), rate, channels)
            _check_plausible(frames, size, fmt)
            if frames > 0 and rate > 0 and channels > 0:
                f.read(min(frames, rate))  # the first second must decode, too
    except (ValueError, RuntimeError) as exc:
        raise CorruptAudio(f"cannot decode {fmt}: {exc}") from None
    if frames <= 0 or rate <= 0 or channels <= 0:
        raise CorruptAudio(f"{fmt} file holds no audio frames")
    return AudioInfo(fmt, rate, channels, frames, frames / rate)


def probe(data: bytes, *, filename: str | None = None) -> AudioInfo:
    """Check that ``data`` is complete, supported audio and describe it, cheaply.

    Raises what :func:`decode` raises, without decoding more than a second.
    """
    fmt = _prepare(data, filename)
    return _describe(io.BytesIO(data), fmt, len(data))


def probe_file(
    path: str | os.PathLike[str],
    *,
    filename: str | None = None,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    max_seconds: float | None = None,
) -> AudioInfo:
    """:func:`probe` for a file on disk, mapped rather than read into memory.

    ``filename`` is the name whose extension must match the content (e.g. the
    one a client uploaded under); it defaults to the path itself. With
    ``max_seconds``, a file longer than that raises :class:`AudioTooLong` (the
    limit :func:`decode_file` would apply later).
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if max_bytes is not None and size > max_bytes:
            raise AudioTooLong(f"file is {size} bytes; the limit is {max_bytes}")
        if size == 0:
            raise CorruptAudio("empty input")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            fmt = _prepare(data, os.fspath(path) if filename is None else filename)
        f.seek(0)
        info = _describe(f, fmt, size)
    _check_length(info.duration_seconds, max_seconds)
    return info


def _check_length(seconds: float, max_seconds: float | None) -> None:
    if max_seconds is not None and seconds > max_seconds:
        raise AudioTooLong(f"audio lasts {seconds:.0f} s; the limit is {max_seconds:.0f} s")


def decode(
    data: bytes,
    *,
    filename: str | None = None,
    sample_rate: int = PROJECT_RATE,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
) -> Audio:
    """Decode wav/flac/mp3/ogg bytes to stereo float32 at ``sample_rate``.

    ``filename``, when given, must carry an allowed extension that matches the
    content. Mono is duplicated to both channels; of more than two channels the
    first two (front left and right) are kept.
    """
    fmt = _prepare(data, filename)
    try:
        with AudioFile(io.BytesIO(data)) as f:
            check_format(fmt.upper(), int(f.samplerate), int(f.num_channels))
            if f.frames <= 0:
                raise CorruptAudio(f"{fmt} file holds no audio frames")
            _check_plausible(int(f.frames), len(data), fmt)
            _check_length(f.frames / f.samplerate, max_seconds)
            if int(f.samplerate) == sample_rate:
                samples = f.read(f.frames)
            else:
                with f.resampled_to(sample_rate) as r:
                    samples = r.read(r.frames)
    except ValueError as exc:
        raise CorruptAudio(f"cannot decode {fmt}: {exc}") from None
    except RuntimeError as exc:
        raise CorruptAudio(f"cannot decode {fmt}: {exc}") from None
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 2 or samples.shape[1] == 0:
        raise CorruptAudio(f"{fmt} file holds no audio frames")
    if samples.shape[0] == 1:
        samples = np.repeat(samples, 2, axis=0)
    elif samples.shape[0] > 2:
        samples = samples[:2]
    if not np.isfinite(samples).all():
        raise CorruptAudio("audio contains non-finite samples")
    return Audio(np.ascontiguousarray(samples), sample_rate)


def read_limited(path: str | os.PathLike[str], max_bytes: int | None = DEFAULT_MAX_BYTES) -> bytes:
    """Read a whole file, refusing one larger than ``max_bytes``."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if max_bytes is not None and size > max_bytes:
            raise AudioTooLong(f"file is {size} bytes; the limit is {max_bytes}")
        return f.read()


def decode_file(
    path: str | os.PathLike[str],
    *,
    sample_rate: int = PROJECT_RATE,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
) -> Audio:
    """Decode a file (see :func:`decode`); its extension must match its content."""
    data = read_limited(path, max_bytes)
    return decode(data, filename=os.fspath(path), sample_rate=sample_rate, max_seconds=max_seconds)


# --------------------------------------------------------------------------- encoding


def encode(audio: Audio, format: AudioFormat, *, quality: str | float | None = None) -> bytes:
    """Encode to wav (16-bit), flac (16-bit), mp3 or ogg vorbis bytes.

    MP3 only exists at 32, 44.1 and 48 kHz, so other rates are resampled to
    44.1 kHz for it. ``quality`` is passed to pedalboard (e.g. "V2" or a kbps
    figure for mp3, 0..1 for ogg).
    """
    if format not in FORMATS:
        raise UnsupportedFormat(f"cannot encode {format!r}; allowed: {', '.join(FORMATS)}")
    samples = audio.samples
    rate = audio.sample_rate
    if format == "mp3" and rate not in _MP3_RATES:
        samples = _resample(samples, rate, PROJECT_RATE)
        rate = PROJECT_RATE
    buffer = io.BytesIO()
    with AudioFile(
        buffer,
        "w",
        samplerate=rate,
        num_channels=int(samples.shape[0]),
        quality=quality,
        format=format,
    ) as f:
        f.write(np.clip(samples, -1.0, 1.0))
    return buffer.getvalue()


def encode_file(
    audio: Audio,
    path: str | os.PathLike[str],
    *,
    format: AudioFormat | None = None,
    quality: str | float | None = None,
) -> None:
    """Encode to a file; the format defaults to the one its extension names."""
    fmt = format or format_from_name(os.fspath(path))
    Path(path).write_bytes(encode(audio, fmt, quality=quality))


def _resample(samples: npt.NDArray[np.float32], rate: int, target: int) -> npt.NDArray[np.float32]:
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(rate, target)
    out = resample_poly(samples, target // g, rate // g, axis=-1)
    return np.ascontiguousarray(out, dtype=np.float32)
