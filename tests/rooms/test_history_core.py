"""The pure history core: undo and redo stacks derived from a member's marked batches."""

from __future__ import annotations

import pytest

from rooms import history
from rooms.history import Mark, Record


def records(*marks: tuple[int, Mark | None]) -> list[Record]:
    return [Record(seq, mark) for seq, mark in marks]


def test_stacks_follow_undo_redo_and_new_edits() -> None:
    log = records((1, None), (3, None), (5, None))
    assert history.stacks(log) == history.Stacks(undo=[1, 3, 5], redo=[])
    log += records((6, Mark("undo", 5)), (8, Mark("undo", 3)))
    assert history.stacks(log) == history.Stacks(undo=[1], redo=[6, 8])
    assert history.target_of("undo", log) == 1
    assert history.target_of("redo", log) == 8
    # A redo is the newest thing to undo; the next redo takes the older undo.
    log += records((9, Mark("redo", 8)))
    assert history.stacks(log) == history.Stacks(undo=[1, 9], redo=[6])
    # A new edit (a restore too) clears what could be redone.
    log += records((12, Mark("restore", 2)))
    assert history.stacks(log) == history.Stacks(undo=[1, 9, 12], redo=[])


def test_pruned_targets_drop_out() -> None:
    # The batch seq 4 undid and the undo seq 7 redid are no longer in the log.
    log = records((5, Mark("undo", 4)), (6, None), (8, Mark("redo", 7)))
    assert history.stacks(log) == history.Stacks(undo=[6, 8], redo=[])


@pytest.mark.parametrize("action", ["undo", "redo"])
def test_nothing_to_do(action: str) -> None:
    with pytest.raises(history.HistoryError) as info:
        history.target_of(action, [])  # type: ignore[arg-type]
    assert info.value.code == f"nothing_to_{action}"


@pytest.mark.parametrize("label", ["", "   ", "x" * 101, "bad\x00label"])
def test_bad_labels(label: str) -> None:
    with pytest.raises(history.HistoryError) as info:
        history.clean_label(label)
    assert info.value.code == history.INVALID


def test_labels_are_tidied() -> None:
    assert history.clean_label("  Before   the drop ") == "Before the drop"
