"""The release lifecycle table: every (status, action) pair, allowed or refused."""

from __future__ import annotations

from typing import get_args

import pytest

from server.releases.lifecycle import Action, InvalidTransition, Status, next_status

ALLOWED = {
    ("draft", "submit"): "pending_review",
    ("processing", "withdraw"): "draft",
    ("pending_review", "withdraw"): "draft",
    ("pending_review", "approve"): "published",
    ("pending_review", "reject"): "rejected",
    ("rejected", "reopen"): "draft",
}


@pytest.mark.parametrize("status", get_args(Status))
@pytest.mark.parametrize("action", get_args(Action))
def test_every_transition(status: str, action: Action) -> None:
    expected = ALLOWED.get((status, action))
    if expected is None:
        with pytest.raises(InvalidTransition) as refused:
            next_status(status, action)
        assert status.replace("_", " ") in str(refused.value)
    else:
        assert next_status(status, action) == expected
