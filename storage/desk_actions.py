"""The desk's actions on a dossier — one layer for the panel and the staff bot.

Each takes ids and the acting officer, opens its own transaction, asks `core.staff.can` whether
the officer may act on the dossier's agency, and lets `core.dossier.decide` judge the dossier's
current state under a row lock; the change is recorded with its audit entry and its effects
(`storage.dossiers.apply_command`, `storage.desk`). Neither front end decides a permission.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from core.calendar import WorkingCalendar
from core.catalog import Catalog
from core.dossier import Action, Actor, Command, Decision, MissingItem
from core.flows import FlowRules
from core.staff import Permission, StaffMember, can
from storage import desk
from storage.db import session_scope
from storage.dossiers import apply_command
from storage.models import Dossier
from storage.staff import StaffError


class DeskRuntime(Protocol):
    """What an action needs of the process (webhook.runtime.Runtime has it)."""

    engine: Engine
    catalog: Catalog
    calendar: WorkingCalendar
    flow_rules: FlowRules  # the one-stop connectors' rules: an accept may forward the dossier


class NotPermitted(StaffError):
    """The officer may not act on this dossier (another agency's, a role without the right,
    or no such dossier — the same answer, no hint that it exists)."""

    def __init__(self) -> None:
        super().__init__("admin.error.forbidden")


def _acted_on(session: Session, dossier_id: int, officer: StaffMember) -> Dossier:
    dossier = session.execute(
        select(Dossier).where(col(Dossier.id) == dossier_id).with_for_update()
    ).scalar_one_or_none()
    if dossier is None or not can(officer, Permission.ACT_ON_DOSSIERS, dossier.agency_code):
        raise NotPermitted
    return dossier


def act(runtime: DeskRuntime, dossier_id: int, officer: StaffMember, command: Command) -> Decision:
    """A step of the state machine taken by `officer`; raises `NotPermitted`, or
    `core.dossier.DossierRuleError` when the dossier's state does not allow it (a stale button:
    another officer took the step first)."""
    if command.actor is not Actor.DESK_OFFICER:
        raise NotPermitted
    with session_scope(runtime.engine) as session:
        _acted_on(session, dossier_id, officer)
        return apply_command(
            session, dossier_id, command, catalog=runtime.catalog, calendar=runtime.calendar,
            rules=runtime.flow_rules, staff_user_id=officer.id,
        )  # fmt: skip


def _step(action: Action, at: datetime, **fields: object) -> Command:
    return Command(action, Actor.DESK_OFFICER, at, **fields)  # type: ignore[arg-type]


def accept(runtime: DeskRuntime, dossier_id: int, officer: StaffMember, at: datetime) -> Decision:
    """Tiếp nhận: the appointment date is the calendar's."""
    return act(runtime, dossier_id, officer, _step(Action.ACCEPT, at))


def request_supplement(
    runtime: DeskRuntime,
    dossier_id: int,
    officer: StaffMember,
    missing: tuple[MissingItem, ...],
    at: datetime,
) -> Decision:
    """Yêu cầu bổ sung, hoàn thiện hồ sơ (form 02): every missing paper at once, with reasons."""
    return act(runtime, dossier_id, officer, _step(Action.REQUEST_SUPPLEMENT, at, missing=missing))


def refuse(
    runtime: DeskRuntime, dossier_id: int, officer: StaffMember, reason: str, at: datetime
) -> Decision:
    """Từ chối (form 03), with its reason."""
    return act(runtime, dossier_id, officer, _step(Action.REFUSE, at, reason=reason))


def forward(runtime: DeskRuntime, dossier_id: int, officer: StaffMember, at: datetime) -> Decision:
    return act(runtime, dossier_id, officer, _step(Action.FORWARD, at))


def extend(
    runtime: DeskRuntime,
    dossier_id: int,
    officer: StaffMember,
    new_date: date | None,
    reason: str,
    at: datetime,
) -> Decision:
    """Gia hạn (form 04): a later appointment, with its reason."""
    command = _step(Action.EXTEND, at, new_appointment_date=new_date, reason=reason)
    return act(runtime, dossier_id, officer, command)


def result_ready(
    runtime: DeskRuntime, dossier_id: int, officer: StaffMember, at: datetime
) -> Decision:
    return act(runtime, dossier_id, officer, _step(Action.RESULT_READY, at))


def returned(runtime: DeskRuntime, dossier_id: int, officer: StaffMember, at: datetime) -> Decision:
    """The result was handed to the citizen."""
    return act(runtime, dossier_id, officer, _step(Action.RETURN_RESULT, at))


def reply(
    runtime: DeskRuntime, dossier_id: int, officer: StaffMember, text: str, at: datetime
) -> int:
    """A message in the dossier's thread, attributed to `officer` and pushed to the citizen on
    their channel; the thread message's id."""
    with session_scope(runtime.engine) as session:
        dossier = _acted_on(session, dossier_id, officer)
        message = desk.reply_to_citizen(session, dossier, officer, text, at)
        assert message.id is not None
        return message.id


def transfer(
    runtime: DeskRuntime,
    dossier_id: int,
    officer: StaffMember,
    to_agency: str,
    reason: str,
    at: datetime,
) -> None:
    """Hand the dossier to another receiving desk of its procedure (the code stays)."""
    with session_scope(runtime.engine) as session:
        dossier = _acted_on(session, dossier_id, officer)
        desk.transfer(session, dossier, to_agency, officer, runtime.catalog, at, reason)
