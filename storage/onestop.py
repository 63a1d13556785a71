"""The one-stop system's view of our dossiers, read from the database, and its answers written
back: what `bots.onestop.OnestopSender` sends and what the callback and pull mode apply."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime
from typing import Any

from sqlalchemy import select, update
from sqlmodel import Session, col

from core.calendar import WorkingCalendar
from core.catalog import Catalog
from core.channels import Channel
from core.dossier import CLOSED, Action, Decision, Status
from core.flows import FlowRules
from core.messages import render
from core.onestop import (
    DossierSnapshot,
    Fee,
    FileRef,
    ProgressStep,
    StatusReport,
    SupplementRound,
    command_for,
)
from storage.dossiers import apply_command, facts_of, find_by_code
from storage.flows import notify_citizen
from storage.models import Citizen, DocumentFile, Dossier, OutboxMessage, StaffUser, StatusEvent
from storage.outbox import UNSETTLED

# A signed, expiring URL for one stored file (webhook.onestop serves it).
FileUrl = Callable[[DocumentFile], str]
OFFICIAL_CODE_NOTICE = "notice.official_code"


def dossier_snapshot(
    session: Session, dossier: Dossier, catalog: Catalog, file_url: FileUrl
) -> DossierSnapshot:
    """The dossier as DongBoHoSoMC carries it, with only what the procedure needs (Decree
    13/2023): the applicant's name, phone and — where the procedure uses it — ID number."""
    assert dossier.id is not None
    procedure = catalog.procedure(dossier.procedure_code)
    citizen = session.get(Citizen, dossier.citizen_id) if dossier.citizen_id else None
    files = session.execute(
        select(DocumentFile)
        .where(col(DocumentFile.dossier_id) == dossier.id)
        .order_by(col(DocumentFile.id))
    ).scalars()
    national = {c.code: c.national_code for c in procedure.components}
    refs = tuple(
        FileRef(
            component_code=national.get(f.component_code, f.component_code),
            file_id=str(f.id),
            name=f"{f.component_code}-{f.id}.{_extension(f.content_type)}",
            url=file_url(f),
        )
        for f in files
    )
    fees = (Fee(procedure.fee_note.vi, procedure.fee_vnd),) if procedure.fee_vnd > 0 else ()
    owner = (citizen.full_name if citizen else None) or ""
    return DossierSnapshot(
        code=dossier.code,
        official_code=dossier.official_code,
        procedure_code=procedure.code,
        procedure_name=procedure.name.vi,
        field_name=procedure.field.vi,
        owner_name=owner,
        status=Status(dossier.status),
        phone=(citizen.phone if citizen else None) or "",
        id_number=citizen.id_number if citizen else None,
        summary=f"{procedure.name.vi} — {owner}" if owner else procedure.name.vi,
        submitted_at=dossier.submitted_at,
        received_at=dossier.received_at,
        appointment_date=dossier.appointment_date,
        files=refs,
        fees=fees,
        supplements=tuple(_supplement_rounds(session, dossier.id, national)),
    )


def _extension(content_type: str) -> str:
    return {"application/pdf": "pdf", "image/png": "png"}.get(content_type, "jpg")


def _supplement_rounds(
    session: Session, dossier_id: int, national: dict[str, str]
) -> Iterator[SupplementRound]:
    """Each supplement request, with when the citizen answered it and the appointment the next
    acceptance gave (DanhSachHoSoBoSung)."""
    events = list(
        session.execute(
            select(StatusEvent)
            .where(col(StatusEvent.dossier_id) == dossier_id)
            .order_by(col(StatusEvent.id))
        ).scalars()
    )
    for index, event in enumerate(events):
        if event.action != Action.REQUEST_SUPPLEMENT.value:
            continue
        later = events[index + 1 :]
        back = next((e for e in later if e.action == Action.RESUBMIT.value), None)
        accepted = next((e for e in later if e.action == Action.ACCEPT.value), None)
        new_date = (accepted.details or {}).get("appointment_date") if accepted else None
        old_date = (event.details or {}).get("old_appointment_date")
        yield SupplementRound(
            round_id=str(event.id),
            requested_by=_handler(session, event),
            content=event.note,
            requested_at=event.at,
            missing=tuple(
                (national.get(m["code"], m["code"]), m["reason"])
                for m in (event.details or {}).get("missing", [])
            ),
            old_appointment_date=date.fromisoformat(old_date) if old_date else None,
            new_appointment_date=date.fromisoformat(new_date) if new_date else None,
            received_at=back.at if back else None,
        )


def _handler(session: Session, event: StatusEvent) -> str:
    """Who took a step, as the one-stop system records it (NguoiXuLy)."""
    if event.staff_user_id is not None:
        staff = session.get(StaffUser, event.staff_user_id)
        if staff is not None:
            return staff.full_name
    return _actor(event.actor_kind)


def _actor(kind: str) -> str:
    """The actor's name in the record's language (templates/messages/actor.toml)."""
    known = {"citizen", "desk_officer", "onestop"}
    return render(f"actor.{kind if kind in known else 'desk_officer'}", "vi")


def progress_of(session: Session, dossier: Dossier, values: dict[str, Any]) -> ProgressStep:
    """A progress step (CapNhatTienDoHoSoMC) from the values core.flows stored with the change."""
    step = values["step"]
    event = session.get(StatusEvent, values["event_id"]) if "event_id" in values else None
    return ProgressStep(
        code=dossier.official_code or dossier.code,
        handler=_handler(session, event) if event else _actor("desk_officer"),
        at=datetime.fromisoformat(step["at"]),
        content=step["note"],
        status=Status(step["to_status"]),
        start=datetime.fromisoformat(step["at"]),
        legal_end=date.fromisoformat(step["appointment_date"])
        if step.get("appointment_date")
        else None,
    )


def earlier_unsent(session: Session, message_id: int, dossier_id: int) -> str | None:
    """The state of an earlier one-stop message of this dossier not yet sent (None: none): the
    system hears of a dossier's changes in order, so a later one waits for it."""
    return session.execute(
        select(col(OutboxMessage.state))
        .where(
            col(OutboxMessage.dossier_id) == dossier_id,
            col(OutboxMessage.channel) == Channel.ONESTOP,
            col(OutboxMessage.id) < message_id,
            col(OutboxMessage.state).in_([*UNSETTLED, "dead"]),
        )
        .limit(1)
    ).scalar_one_or_none()


def store_official_code(session: Session, dossier_id: int, official: str, at: datetime) -> bool:
    """The one-stop system named the dossier: keep its code (lookups accept both) and tell the
    citizen once. False when it was known already."""
    official = official.strip().upper()[:64]
    result = session.execute(
        update(Dossier)
        .where(col(Dossier.id) == dossier_id, col(Dossier.official_code).is_(None))
        .values(official_code=official)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    dossier = session.get(Dossier, dossier_id)
    assert dossier is not None
    session.refresh(dossier)
    notify_citizen(session, dossier, f"official:{dossier_id}", OFFICIAL_CODE_NOTICE,
                   {"code": dossier.code, "official_code": official}, at)  # fmt: skip
    return True


def apply_report(
    session: Session,
    dossier: Dossier,
    report: StatusReport,
    *,
    catalog: Catalog,
    calendar: WorkingCalendar,
    rules: FlowRules,
    at: datetime,
) -> list[Decision]:
    """What the one-stop system reported, through the same state machine as the panel (actor
    `onestop`): each step with its audit entry and citizen notice. Nothing when it changes
    nothing (a repeat); `core.dossier.DossierRuleError` when the machine refuses a step."""
    assert dossier.id is not None
    procedure = catalog.procedure(dossier.procedure_code)
    decisions: list[Decision] = []
    for _ in range(3):  # at most two steps (forward, then extend); a third means a loop
        command = command_for(report, facts_of(dossier), procedure, at=at)
        if command is None:
            return decisions
        decision = apply_command(
            session, dossier.id, command, catalog=catalog, calendar=calendar, rules=rules
        )
        decisions.append(decision)
        session.refresh(dossier)
    return decisions


def find_dossier(session: Session, code: str) -> Dossier | None:
    """The dossier a one-stop message names, by our code or the system's, locked for the change."""
    found = find_by_code(session, code)
    if found is None:
        return None
    return session.execute(
        select(Dossier).where(col(Dossier.id) == found.id).with_for_update()
    ).scalar_one()


def forwarded_open_dossiers(session: Session, agencies: set[str]) -> list[Dossier]:
    """Dossiers the one-stop system knows of and that are not finished, with no change of ours
    still on its way there (a pull would read a status older than our own)."""
    pending = (
        select(col(OutboxMessage.dossier_id))
        .where(
            col(OutboxMessage.channel) == Channel.ONESTOP,
            col(OutboxMessage.state).in_([*UNSETTLED, "dead"]),
        )
        .scalar_subquery()
    )
    return list(
        session.execute(
            select(Dossier)
            .where(
                col(Dossier.onestop_queued_at).is_not(None),
                col(Dossier.agency_code).in_(sorted(agencies)),
                col(Dossier.status).not_in([s.value for s in CLOSED]),
                col(Dossier.id).not_in(pending),
            )
            .order_by(col(Dossier.id))
        ).scalars()
    )


def forward_failures(session: Session, agency_code: str, limit: int = 20) -> list[OutboxMessage]:
    """Changes the agency's one-stop system refused or never took (dead letters), newest first:
    the inbox shows them as their own queue, the deliveries page retries them."""
    return list(
        session.execute(
            select(OutboxMessage)
            .where(
                col(OutboxMessage.channel) == Channel.ONESTOP,
                col(OutboxMessage.recipient) == agency_code,
                col(OutboxMessage.state) == "dead",
            )
            .order_by(col(OutboxMessage.id).desc())
            .limit(limit)
        ).scalars()
    )
