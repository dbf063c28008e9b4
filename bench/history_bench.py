"""What an undo and a restore cost in CPU, for the mashup room kind (no I/O).

An undo rebuilds two states from a checkpoint by replaying the log (at most
``room_snapshot_every`` batches, 200 by default, plus whatever lies between the undone batch
and the present), then plans the undo against the current state; a restore plans the diff of
two whole timelines. Run::

    python -m bench.history_bench [--clips 100 200 500] [--batches 200]
"""

from __future__ import annotations

import argparse
import time
import uuid
from typing import Any

from dsp.timeline import Clip
from rooms import fractional, history
from rooms.kinds import SERVER_ACTOR, Actor
from server.mashups import room

KIND = room.MashupRoom()
OWNER = uuid.UUID(int=1)
ACTOR = Actor(user_id=OWNER, role="owner")


def start(clips: int) -> Any:
    sync = room.Sync(
        version=1,
        name="bench",
        owner_id=OWNER,
        target_duration_seconds=600,
        members=[room.RoomMember(user_id=OWNER, username="o", role="owner")],
        inputs=[
            room.InputTrack(track_id="t", name="t.wav", owner_id=OWNER, duration_seconds=600.0)
        ],
    )
    state = KIND.apply(KIND.initial_state(), sync, SERVER_ACTOR)
    keys = fractional.keys_between(None, None, clips)
    adds: list[room.MashupOp] = [
        room.AddClip(
            clip=Clip(
                id=f"c{n}", track_id="t", in_seconds=n % 500, out_seconds=n % 500 + 4.0,
                position_beats=float(n * 4),
            ),
            index=keys[n],
        )
        for n in range(clips)
    ]  # fmt: skip
    return KIND.apply_batch(state, adds, ACTOR)


def edits(clips: int, batches: int) -> list[list[Any]]:
    return [
        [room.MoveClip(clip=f"c{n % clips}", position_beats=float(n)),
         room.SetClip(clip=f"c{(n * 7) % clips}", gain_db=-float(n % 12))]
        for n in range(batches)
    ]  # fmt: skip


def replay(state: Any, log: list[list[Any]]) -> Any:
    for ops in log:
        state = KIND.apply_batch(state, ops, ACTOR)
    return state


def timed(repeat: int, fn: Any, *args: Any) -> float:
    """Milliseconds per call."""
    started = time.perf_counter()
    for _ in range(repeat):
        fn(*args)
    return (time.perf_counter() - started) / repeat * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, nargs="+", default=[50, 128, 256])
    parser.add_argument("--batches", type=int, default=200)  # (at least 2)
    args = parser.parse_args()
    print(f"{'clips':>6} {'replay ms':>10} {'per batch us':>13} {'plan undo ms':>13} "
          f"{'plan restore ms':>16} {'restore ops':>12}")  # fmt: skip
    for clips in args.clips:
        base = start(clips)
        log = edits(clips, args.batches)

        replay_ms = timed(3, replay, base, log)
        head = replay(base, log)
        before = KIND.apply_batch(base, log[0], ACTOR)
        after = KIND.apply_batch(before, log[1], ACTOR)
        undo_ms = timed(20, history.plan_undo, KIND, ACTOR, 2, before, after, head)
        restore_ms = timed(3, history.plan_restore, KIND, ACTOR, 0, base, head)
        ops = len(history.plan_restore(KIND, ACTOR, 0, base, head).ops)
        print(
            f"{clips:>6} {replay_ms:>10.1f} {replay_ms * 1000 / len(log):>13.0f} "
            f"{undo_ms:>13.2f} {restore_ms:>16.1f} {ops:>12}"
        )


if __name__ == "__main__":
    main()
