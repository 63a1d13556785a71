"""Status by code: what anyone holding a dossier code may see (Tây Ninh Art. 10.4).

Processing status only — never a name, phone, address or photo (Quảng Ngãi Art. 10.5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from core.catalog import Text
from core.dossier import NATIONAL_STATUS_CODE, Status
from core.messages import render


class StepState(StrEnum):
    DONE = "done"
    CURRENT = "current"  # where the dossier is now: highlighted on the page
    UPCOMING = "upcoming"


@dataclass(frozen=True)
class Step:
    """One step of the lookup timeline (like parcel tracking): a status and the day it was
    reached; an upcoming step has no day. Built from statuses and days only — no note, no
    reason, no name can be in it."""

    status: Status
    state: StepState
    on: date | None = None

    def title(self, lang: str = "vi") -> str:
        return render(f"lookup.step.{self.status.value}", lang)

    def as_json(self, lang: str = "vi") -> dict[str, Any]:
        return {
            "status": self.status.value,
            "title": self.title(lang),
            "state": self.state.value,
            "date": self.on.isoformat() if self.on else None,
        }


# The usual road of a dossier; a supplement round or an extension is a step between these.
MAIN_ROAD: tuple[Status, ...] = (
    Status.SUBMITTED,
    Status.ACCEPTED,
    Status.PROCESSING,
    Status.RESULT_READY,
    Status.RETURNED,
)
# Where on the main road a status stands (its steps to come are the main road's after it).
_ROAD_POSITION: dict[Status, int] = {
    Status.SUBMITTED: 0,
    Status.SUPPLEMENT_REQUESTED: 0,
    Status.RESUBMITTED: 0,
    Status.ACCEPTED: 1,
    Status.PROCESSING: 2,
    Status.EXTENDED: 2,
    Status.RESULT_READY: 3,
    Status.RETURNED: 4,
}


def timeline(
    status: Status, submitted_on: date, changes: Sequence[tuple[Status, date]]
) -> tuple[Step, ...]:
    """The steps of a dossier now in `status`, from its status changes (the status reached and
    the day, oldest first): each change a step done with its day, the last one current, then the
    main road's steps still to come. A refused, withdrawn or stopped dossier has none to come."""
    reached = list(changes)
    if not reached or reached[0][0] is not Status.SUBMITTED:  # data from before the audit trail
        reached.insert(0, (Status.SUBMITTED, submitted_on))
    if reached[-1][0] is not status:  # the dossier's own column is the truth
        reached.append((status, reached[-1][1]))
    steps = [Step(to, StepState.DONE, on) for to, on in reached[:-1]]
    last, on = reached[-1]
    steps.append(Step(last, StepState.CURRENT, on))
    position = _ROAD_POSITION.get(status)
    if position is not None:
        steps.extend(Step(s, StepState.UPCOMING) for s in MAIN_ROAD[position + 1 :])
    return tuple(steps)


@dataclass(frozen=True)
class PublicStatus:
    code: str
    procedure: Text
    agency: Text
    status: Status
    submitted_on: date
    appointment_date: date | None
    official_code: str | None = None  # the one-stop system's code, once it gave one
    steps: tuple[Step, ...] = ()  # the timeline (`timeline`); empty where none was read

    @property
    def national_status_code(self) -> int:
        return NATIONAL_STATUS_CODE[self.status]

    def status_text(self, lang: str = "vi") -> str:
        return render(f"status.{self.status.value}", lang)

    def next_step(self, lang: str = "vi") -> str:
        return render(f"next_step.{self.status.value}", lang)

    def as_json(self, lang: str = "vi") -> dict[str, Any]:
        return {
            "code": self.code,
            "official_code": self.official_code,
            "procedure": self.procedure.get(lang),
            "agency": self.agency.get(lang),
            "status": self.status.value,
            "status_text": self.status_text(lang),
            "national_status_code": self.national_status_code,
            "submitted_on": self.submitted_on.isoformat(),
            "appointment_date": self.appointment_date.isoformat()
            if self.appointment_date
            else None,
            "next_step": self.next_step(lang),
            "steps": [step.as_json(lang) for step in self.steps],
        }
