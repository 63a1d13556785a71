"""The dossier's legal life: one table of states and transitions, one function that applies them.

Nothing else in the product sets a dossier's status. Adapters build a `Command`, call `decide`,
and persist the `Decision` (new status, dates, the notice to send, the audit entry) in one
transaction. Rules come from Decree 61/2018 and the provincial regulations (see docs/domain.md):
supplement "once, fully" restarts the clock; an extension comes once, at least one working day
before the due date; a closed dossier stays closed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from core.calendar import WorkingCalendar, to_local
from core.catalog import Procedure
from core.messages import render


class Status(StrEnum):
    DRAFT = "draft"  # being collected in chat, not yet a dossier for the agency
    SUBMITTED = "submitted"  # mới tiếp nhận trực tuyến, waiting for the desk
    SUPPLEMENT_REQUESTED = "supplement_requested"  # yêu cầu bổ sung, hoàn thiện hồ sơ
    RESUBMITTED = "resubmitted"  # citizen sent the supplement, waiting for the desk again
    ACCEPTED = "accepted"  # đã tiếp nhận: receipt and appointment date issued
    REFUSED = "refused"  # từ chối tiếp nhận, giải quyết
    PROCESSING = "processing"  # forwarded to the competent unit / one-stop system
    EXTENDED = "extended"  # apology sent, new appointment date (once)
    RESULT_READY = "result_ready"  # có kết quả: bring originals, pay the fee
    RETURNED = "returned"  # đã trả kết quả: closed
    WITHDRAWN = "withdrawn"  # rút hồ sơ by the citizen
    STOPPED = "stopped"  # dừng xử lý


class Actor(StrEnum):
    CITIZEN = "citizen"
    DESK_OFFICER = "desk_officer"
    ONESTOP = "onestop"  # the province's one-stop information system, through its callbacks


class Action(StrEnum):
    SUBMIT = "submit"
    ACCEPT = "accept"
    REQUEST_SUPPLEMENT = "request_supplement"
    RESUBMIT = "resubmit"
    REFUSE = "refuse"
    FORWARD = "forward"
    EXTEND = "extend"
    RESULT_READY = "result_ready"
    RETURN_RESULT = "return_result"
    WITHDRAW = "withdraw"
    STOP = "stop"


NATIONAL_STATUS_CODE: dict[Status, int] = {
    # Status codes of the national portal (DVCQG) sync; drafts never leave the gateway.
    Status.DRAFT: 1,
    Status.SUBMITTED: 1,
    Status.RESUBMITTED: 1,
    Status.ACCEPTED: 2,
    Status.REFUSED: 3,
    Status.PROCESSING: 4,
    Status.EXTENDED: 4,
    Status.SUPPLEMENT_REQUESTED: 5,
    Status.WITHDRAWN: 7,
    Status.STOPPED: 8,
    Status.RESULT_READY: 9,
    Status.RETURNED: 10,
}

CLOSED: frozenset[Status] = frozenset(
    {Status.REFUSED, Status.RETURNED, Status.WITHDRAWN, Status.STOPPED}
)
# Statuses whose appointment date is running (due soon / overdue make sense).
RUNNING: frozenset[Status] = frozenset({Status.ACCEPTED, Status.PROCESSING, Status.EXTENDED})
# Statuses waiting for the desk to look at the dossier.
AWAITING_DESK: frozenset[Status] = frozenset({Status.SUBMITTED, Status.RESUBMITTED})


@dataclass(frozen=True)
class Transition:
    action: Action
    sources: frozenset[Status]
    target: Status
    actors: frozenset[Actor]
    notice: str | None  # message key (templates/messages/notice.toml) sent to the citizen
    audit: str  # message key (templates/messages/audit.toml) of the audit-trail entry


def _t(
    action: Action, sources: set[Status], target: Status, actors: set[Actor], notice: str | None
) -> Transition:
    return Transition(
        action, frozenset(sources), target, frozenset(actors), notice, f"audit.{action.value}"
    )


_DESK = {Actor.DESK_OFFICER}
_DESK_OR_ONESTOP = {Actor.DESK_OFFICER, Actor.ONESTOP}
_IN_HAND = {Status.ACCEPTED, Status.PROCESSING, Status.EXTENDED}

TRANSITIONS: tuple[Transition, ...] = (
    _t(Action.SUBMIT, {Status.DRAFT}, Status.SUBMITTED, {Actor.CITIZEN}, "notice.submitted"),
    _t(Action.ACCEPT, set(AWAITING_DESK), Status.ACCEPTED, _DESK, "notice.accepted"),
    _t(
        Action.REQUEST_SUPPLEMENT,
        set(AWAITING_DESK) | _IN_HAND,
        Status.SUPPLEMENT_REQUESTED,
        _DESK_OR_ONESTOP,
        "notice.supplement_requested",
    ),
    _t(
        Action.RESUBMIT,
        {Status.SUPPLEMENT_REQUESTED},
        Status.RESUBMITTED,
        {Actor.CITIZEN},
        "notice.resubmitted",
    ),
    _t(
        Action.REFUSE,
        set(AWAITING_DESK) | _IN_HAND,
        Status.REFUSED,
        _DESK_OR_ONESTOP,
        "notice.refused",
    ),
    _t(
        Action.FORWARD,
        {Status.ACCEPTED},
        Status.PROCESSING,
        _DESK_OR_ONESTOP,
        "notice.forwarded",
    ),
    _t(
        Action.EXTEND,
        {Status.ACCEPTED, Status.PROCESSING},
        Status.EXTENDED,
        _DESK_OR_ONESTOP,
        "notice.extended",
    ),
    _t(Action.RESULT_READY, _IN_HAND, Status.RESULT_READY, _DESK_OR_ONESTOP, "notice.result_ready"),
    _t(
        Action.RETURN_RESULT,
        {Status.RESULT_READY},
        Status.RETURNED,
        _DESK_OR_ONESTOP,
        "notice.returned",
    ),
    _t(
        Action.WITHDRAW,
        set(AWAITING_DESK) | {Status.SUPPLEMENT_REQUESTED} | _IN_HAND,
        Status.WITHDRAWN,
        {Actor.CITIZEN, Actor.ONESTOP},  # the citizen may withdraw at the one-stop desk too
        "notice.withdrawn",
    ),
    _t(Action.STOP, _IN_HAND, Status.STOPPED, _DESK_OR_ONESTOP, "notice.stopped"),
)

_BY_ACTION: dict[Action, Transition] = {t.action: t for t in TRANSITIONS}


class DossierRuleError(Exception):
    """A rule said no. `message(lang)` is the plain-words explanation for the person who tried."""

    def __init__(self, reason: str, **values: Any) -> None:
        self.reason = reason
        self.values = values
        super().__init__(f"{reason}: {values}")

    def message(self, lang: str = "vi") -> str:
        return render(f"errors.{self.reason}", lang, **self.values)


@dataclass(frozen=True)
class MissingItem:
    """One line of the supplement request (Phiếu yêu cầu bổ sung): what to add or fix, and why."""

    component: str  # component code of the procedure
    reason: str


@dataclass(frozen=True)
class DossierFacts:
    """What the rules need to know about a dossier, whatever stores it."""

    code: str
    status: Status
    received_at: datetime | None = None
    appointment_date: date | None = None
    extended: bool = False


@dataclass(frozen=True)
class Command:
    action: Action
    actor: Actor
    at: datetime  # aware; when it happens
    reason: str = ""
    missing: tuple[MissingItem, ...] = ()
    new_appointment_date: date | None = None


@dataclass(frozen=True)
class Notice:
    """What to tell the citizen: a message key and JSON-safe values for it."""

    key: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    transition: Transition
    command: Command
    before: DossierFacts
    after: DossierFacts
    notice: Notice | None
    audit_note: str  # the audit entry in Vietnamese (the record's language); reason included


def allowed_actions(status: Status, actor: Actor) -> list[Action]:
    """What this actor may do now: the buttons to show."""
    return [t.action for t in TRANSITIONS if status in t.sources and actor in t.actors]


def decide(
    facts: DossierFacts, command: Command, *, procedure: Procedure, calendar: WorkingCalendar
) -> Decision:
    """Apply one command to a dossier, or raise `DossierRuleError` saying why not."""
    transition = _BY_ACTION[command.action]
    if command.action is Action.EXTEND and facts.extended:
        raise DossierRuleError("extended_once")  # Art. 12.8: the date may be moved only once
    if facts.status not in transition.sources:
        raise DossierRuleError(
            "transition_not_allowed",
            status=render(f"status.{facts.status.value}"),
            action=render(f"action.{command.action.value}"),
        )
    if command.actor not in transition.actors:
        raise DossierRuleError("actor_not_allowed", action=render(f"action.{command.action.value}"))
    after = _apply_rules(facts, command, procedure, calendar)
    after = replace(after, status=transition.target)
    notice = _notice(transition, facts, after, command, procedure)
    values = _audit_values(facts, after, command, procedure)
    return Decision(
        transition, command, facts, after, notice, render(transition.audit, "vi", **values)
    )


def _apply_rules(
    facts: DossierFacts, command: Command, procedure: Procedure, calendar: WorkingCalendar
) -> DossierFacts:
    match command.action:
        case Action.ACCEPT:
            # The clock starts (or restarts after a supplement) when the desk receives it whole.
            appointment = calendar.appointment_date(
                command.at, procedure.processing_days, procedure.same_day
            )
            return replace(facts, received_at=command.at, appointment_date=appointment)
        case Action.REQUEST_SUPPLEMENT:
            _check_missing(command.missing, procedure)
            # The clock restarts when the full dossier comes back (Art. 12.4).
            return replace(facts, received_at=None, appointment_date=None, extended=False)
        case Action.REFUSE | Action.STOP:
            _require_reason(command)
        case Action.EXTEND:
            _check_extension(facts, command, calendar)
            return replace(facts, appointment_date=command.new_appointment_date, extended=True)
    return facts


def _require_reason(command: Command) -> None:
    if not command.reason.strip():
        raise DossierRuleError("reason_required", action=render(f"action.{command.action.value}"))


def _check_missing(missing: tuple[MissingItem, ...], procedure: Procedure) -> None:
    if not missing:
        raise DossierRuleError("supplement_empty")
    known = {c.code for c in procedure.components}
    for item in missing:
        if item.component not in known:
            raise DossierRuleError("unknown_component", component=item.component)
        if not item.reason.strip():
            name = procedure.component(item.component).name.vi
            raise DossierRuleError("supplement_reason_required", component=name)


# How far an apology may move the appointment: the rules set no number (docs/domain.md), so a
# year after the current date — beyond it the dossier is stopped or refused, not extended.
MAX_EXTENSION_DAYS = 365


def _check_extension(facts: DossierFacts, command: Command, calendar: WorkingCalendar) -> None:
    _require_reason(command)
    due, new = facts.appointment_date, command.new_appointment_date
    if due is None or new is None or new <= due:
        raise DossierRuleError("extension_date_invalid", due=due or "—")
    if (new - due).days > MAX_EXTENSION_DAYS:
        latest = due + timedelta(days=MAX_EXTENSION_DAYS)
        raise DossierRuleError("extension_too_far", latest=latest.strftime("%d/%m/%Y"))
    if not calendar.is_working_day(new):
        raise DossierRuleError("extension_not_working_day", date=new)
    if not calendar.can_extend(due, command.at):
        raise DossierRuleError("extension_too_late", due=due)


def _notice(
    transition: Transition,
    before: DossierFacts,
    after: DossierFacts,
    command: Command,
    procedure: Procedure,
) -> Notice | None:
    if transition.notice is None:
        return None
    values: dict[str, Any] = {
        "code": after.code,
        "procedure": {"vi": procedure.name.vi, "en": procedure.name.en},
    }
    if after.appointment_date:
        values["appointment_date"] = after.appointment_date.isoformat()
    if command.reason:
        values["reason"] = command.reason
    match command.action:
        case Action.EXTEND:
            values["old_appointment_date"] = (
                before.appointment_date.isoformat() if before.appointment_date else None
            )
        case Action.REQUEST_SUPPLEMENT:
            if before.appointment_date:  # the round moves it (DanhSachHoSoBoSung)
                values["old_appointment_date"] = before.appointment_date.isoformat()
            values["missing"] = [
                {
                    "code": m.component,
                    "component": {
                        "vi": procedure.component(m.component).name.vi,
                        "en": procedure.component(m.component).name.en,
                    },
                    "reason": m.reason,
                }
                for m in command.missing
            ]
        case Action.ACCEPT | Action.RESULT_READY:
            values["originals"] = [
                {"vi": c.name.vi, "en": c.name.en} for c in procedure.components if c.bring_original
            ]
            values["fee_vnd"] = procedure.fee_vnd
    return Notice(transition.notice, values)


def _audit_values(
    before: DossierFacts, after: DossierFacts, command: Command, procedure: Procedure
) -> dict[str, Any]:
    return {
        "actor": render(f"actor.{command.actor.value}"),
        "from_status": render(f"status.{before.status.value}"),
        "to_status": render(f"status.{after.status.value}"),
        "appointment_date": after.appointment_date or "",
        "reason": command.reason,
        "missing": "; ".join(
            f"{procedure.component(m.component).name.vi}: {m.reason}" for m in command.missing
        ),
        "when": to_local(command.at),
    }
