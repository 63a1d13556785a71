"""Dossiers for tests, made the way the product makes them (storage functions, no shortcuts)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine

from core.calendar import WorkingCalendar
from core.catalog import Catalog
from core.dossier import Action, Actor, Command, Decision
from core.flows import NO_ONESTOP
from storage.db import session_scope
from storage.dossiers import apply_command, submit_dossier
from storage.models import ChannelIdentity, Citizen

MONDAY = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)  # 10:00 in Vietnam, Monday 7 December 2026


def citizen_dossier(
    engine: Engine,
    catalog: Catalog,
    calendar: WorkingCalendar,
    *,
    channel: str = "telegram",
    external_id: str = "555",
    phone: str | None = "+84912345678",
    language: str = "vi",
    slug: str = "ho-kinh-doanh",
    at: datetime = MONDAY,
) -> tuple[int, str]:
    """A citizen reachable on `channel` submits a dossier; its (id, code)."""
    procedure = catalog.procedure_by_slug(slug)
    with session_scope(engine) as session:
        citizen = Citizen(full_name="Nguyễn Văn An", phone=phone)
        session.add(citizen)
        session.flush()
        assert citizen.id is not None
        session.add(
            ChannelIdentity(
                citizen_id=citizen.id, channel=channel, external_id=external_id, language=language
            )
        )
        dossier, _ = submit_dossier(
            session,
            catalog=catalog,
            calendar=calendar,
            procedure_code=procedure.code,
            agency_code=catalog.receiving_agencies(procedure)[0].code,
            citizen_id=citizen.id,
            channel=channel,
            at=at,
        )
        assert dossier.id is not None
        return dossier.id, dossier.code


def act(
    engine: Engine,
    catalog: Catalog,
    calendar: WorkingCalendar,
    dossier_id: int,
    action: Action,
    at: datetime,
    actor: Actor = Actor.DESK_OFFICER,
    **details: Any,
) -> Decision:
    """A desk officer (by default) applies one action, committed."""
    with session_scope(engine) as session:
        return apply_command(
            session,
            dossier_id,
            Command(action, actor, at, **details),
            catalog=catalog,
            calendar=calendar,
            rules=NO_ONESTOP,
        )
