"""Command-line tools: ``blendtune analyze FILE...`` and ``blendtune render TIMELINE.json``.

A render job is a JSON file holding the timeline and where its tracks are::

    {
      "sources": {"drums": "loops/drums.wav", "vox": "/music/vox.flac"},
      "timeline": {"bpm": 124, "key": "A minor", "clips": [...], "master": [...]}
    }

Relative source paths are resolved against the job file's directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import click
import msgspec
from msgspec import Meta
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dsp.analysis import Analysis, analyze_path
from dsp.codec import Audio, decode_file, format_from_name
from dsp.errors import AudioError, InvalidTimeline
from dsp.render import (
    DEFAULT_CEILING_DBTP,
    DEFAULT_TARGET_LUFS,
    check_levels,
    encode_under_ceiling,
    master_ceiling,
    render_timeline,
)
from dsp.timeline import Identifier, Timeline, timeline_duration_seconds


class RenderJob(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The file ``blendtune render`` reads: track id -> audio file, and the timeline."""

    sources: Annotated[dict[Identifier, str], Meta(max_length=256)]
    timeline: Timeline


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


@click.command("analyze")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per file instead.")
def analyze(files: tuple[Path, ...], as_json: bool) -> None:
    """Analyse audio files: duration, tempo, key, loudness and true peak.

    Prints a table (readable at 80 columns and in a pipe); file names are never cut,
    problems and notes (why a tempo or key is unknown) are listed under it.
    """
    results: list[tuple[Path, Analysis | Exception]] = []
    for path in files:
        try:
            results.append((path, analyze_path(path)))
        except (AudioError, OSError) as exc:
            results.append((path, exc))
    failed = sum(isinstance(result, Exception) for _, result in results)
    if as_json:
        for path, result in results:
            if isinstance(result, Exception):
                payload: dict[str, object] = {"file": str(path), "error": _problem(result)}
            else:
                payload = {"file": str(path), **msgspec.to_builtins(result)}
            click.echo(msgspec.json.encode(payload))
    else:
        _print_table(results)
    if failed:
        raise SystemExit(1)


def _problem(exc: Exception) -> str:
    if isinstance(exc, OSError):
        return f"cannot read the file: {exc.strerror or exc}"
    return str(exc)


def _print_table(results: list[tuple[Path, Analysis | Exception]]) -> None:
    # Wide enough for the numbers; in a pipe rich assumes 80 columns, which fits.
    console = Console(width=max(80, Console().width))
    table = Table(title="Analysis", expand=False, pad_edge=False)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("file", overflow="fold", ratio=1)
    for column in ("length", "BPM (conf)", "key (conf)", "LUFS", "dBTP"):
        table.add_column(column, justify="right", no_wrap=True)
    remarks: list[str] = []
    for n, (path, result) in enumerate(results, 1):
        if isinstance(result, Exception):
            table.add_row(str(n), str(path), "[red]refused[/red]", "", "", "", "")
            remarks.append(f"{n}. [red]{type(result).__name__}[/red]: {_problem(result)}")
            continue
        bpm = "-" if result.bpm is None else f"{result.bpm:.1f} ({result.bpm_confidence:.2f})"
        key = result.key_signature or "unknown"
        table.add_row(
            str(n),
            str(path),
            f"{result.duration_seconds:.1f} s",
            bpm,
            f"{key} ({result.key_confidence:.2f})",
            _fmt(result.loudness_lufs, ".1f"),
            _fmt(result.true_peak_dbtp, ".1f"),
        )
        remarks.extend(f"{n}. {note}" for note in result.notes)
    console.print(table)
    for remark in remarks:
        console.print(remark, overflow="fold", highlight=False)


def load_job(path: Path) -> RenderJob:
    """Read and validate a render job; InvalidTimeline if it is malformed."""
    try:
        return msgspec.json.decode(path.read_bytes(), type=RenderJob)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise InvalidTimeline(f"{path}: {exc}") from None


@click.command("render")
@click.argument("job_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Output file; its extension picks the format (wav, flac, mp3, ogg).",
)
@click.option("--start", type=float, default=0.0, show_default=True, help="Start, seconds.")
@click.option("--duration", type=float, default=None, help="Length, seconds [default: to end].")
@click.option("--target-lufs", type=float, default=DEFAULT_TARGET_LUFS, show_default=True)
@click.option("--ceiling-dbtp", type=float, default=DEFAULT_CEILING_DBTP, show_default=True)
@click.option("--draft", is_flag=True, help="Faster, lower-quality time-stretching.")
def render(
    job_file: Path,
    output: Path,
    start: float,
    duration: float | None,
    target_lufs: float,
    ceiling_dbtp: float,
    draft: bool,
) -> None:
    """Render a mashup timeline (see docs/audio.md for the JSON job format)."""
    console = Console(stderr=True)
    try:
        fmt = format_from_name(output.name)
        check_levels(target_lufs, ceiling_dbtp)
        job = load_job(job_file)
        if not any(not clip.muted for clip in job.timeline.clips):
            raise InvalidTimeline("the timeline has no clips to render (or all are muted)")
        length = timeline_duration_seconds(job.timeline)
        if start >= length:
            raise InvalidTimeline(
                f"--start {start:g} s is at or past the end of the timeline ({length:.2f} s)"
            )
        used = sorted({clip.track_id for clip in job.timeline.clips})
        missing = [track for track in used if track not in job.sources]
        if missing:
            raise InvalidTimeline(f"no entry in 'sources' for track(s): {', '.join(missing)}")
        sources: dict[str, Audio] = {}
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            loading = progress.add_task("decoding sources", total=len(used))
            for track in used:
                sources[track] = decode_file(job_file.parent / job.sources[track])
                progress.advance(loading)
            rendering = progress.add_task("rendering", total=None)

            def report(done: int, total: int) -> None:
                progress.update(rendering, completed=done, total=total)

            rendered = render_timeline(
                job.timeline,
                sources,
                start_seconds=start,
                duration_seconds=duration,
                target_lufs=target_lufs,
                ceiling_dbtp=master_ceiling(ceiling_dbtp, fmt),
                high_quality=not draft,
                progress=report,
            )
            # Measured on what is written: a lossy encoding moves the true peak.
            encoded = encode_under_ceiling(rendered.audio, fmt, ceiling_dbtp=ceiling_dbtp)
            output.write_bytes(encoded.data)
    except (AudioError, OSError) as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None
    console.print(
        f"wrote {output} ({rendered.audio.duration_seconds:.2f} s, "
        f"{_fmt(encoded.loudness_lufs, '.1f')} LUFS, "
        f"{_fmt(encoded.true_peak_dbtp, '.1f')} dBTP, measured on the written file)"
    )
