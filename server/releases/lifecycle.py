"""The release lifecycle as data: which action moves which status where.

    draft --submit--> pending_review            (>= 1 track and cover art)
    draft --submit--> processing                (some track's upload is still being analysed;
                                                 the upload worker moves it on to review)
    processing / pending_review --withdraw--> draft   (owner)
    pending_review --approve--> published       (admin)
    pending_review --reject--> rejected         (admin, with a reason)
    rejected --reopen--> draft                  (owner; the reason stays visible)

Published is final. Only drafts are edited (title, genre, cover art, tracks).
"""

from __future__ import annotations

from typing import Final, Literal

Status = Literal["draft", "processing", "pending_review", "published", "rejected"]
Action = Literal["submit", "withdraw", "approve", "reject", "reopen"]

ALLOWED: Final[dict[Action, tuple[frozenset[str], Status]]] = {
    "submit": (frozenset({"draft"}), "pending_review"),
    "withdraw": (frozenset({"processing", "pending_review"}), "draft"),
    "approve": (frozenset({"pending_review"}), "published"),
    "reject": (frozenset({"pending_review"}), "rejected"),
    "reopen": (frozenset({"rejected"}), "draft"),
}
ADMIN_ACTIONS: Final = frozenset({"approve", "reject"})
EDITABLE: Final = frozenset({"draft"})


class InvalidTransition(Exception):
    def __init__(self, status: str, action: str) -> None:
        super().__init__(f"A release that is {status.replace('_', ' ')} cannot be {_past(action)}.")
        self.status = status
        self.action = action


def _past(action: str) -> str:
    return {"submit": "submitted", "withdraw": "withdrawn", "approve": "approved",
            "reject": "rejected", "reopen": "reopened"}[action]  # fmt: skip


def next_status(status: str, action: Action) -> Status:
    """Where ``action`` takes a release in ``status``; raises InvalidTransition."""
    sources, target = ALLOWED[action]
    if status not in sources:
        raise InvalidTransition(status, action)
    return target
