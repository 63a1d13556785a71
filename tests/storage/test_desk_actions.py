"""The desk actions the panel and the staff bot share: the permission is core.staff's, asked
with the officer's agency against the dossier's, and a refused action changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.calendar import WorkingCalendar
from core.catalog import Catalog
from core.flows import NO_ONESTOP, FlowRules
from core.staff import Role, StaffMember
from storage import desk_actions
from storage.db import session_scope
from storage.models import Dossier, OutboxMessage
from storage.staff import create_staff, member
from tests.dossiers import MONDAY, citizen_dossier


@dataclass
class Desk:
    engine: Engine
    catalog: Catalog
    calendar: WorkingCalendar
    flow_rules: FlowRules = NO_ONESTOP


def outbox_rows(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.execute(select(func.count()).select_from(OutboxMessage)).scalar_one())


def test_only_an_officer_of_the_dossiers_agency_acts_and_a_refusal_changes_nothing(
    engine: Engine, catalog: Catalog, calendar: WorkingCalendar
) -> None:
    desk = Desk(engine, catalog, calendar)
    dossier_id, _ = citizen_dossier(engine, catalog, calendar)
    with Session(engine) as session:
        dossier = session.get(Dossier, dossier_id)
        assert dossier is not None
    desks = [a.code for a in catalog.receiving_agencies(catalog.procedure(dossier.procedure_code))]
    other = next(code for code in desks if code != dossier.agency_code)
    before = outbox_rows(engine)
    stranger = StaffMember(999, "binh.other", "Binh", other, Role.AGENCY_ADMIN)
    admin = StaffMember(998, "quan.tri", "Quản trị", dossier.agency_code, Role.SYSTEM_ADMIN)
    for officer in (stranger, admin):  # another agency; a role that works no dossier
        with pytest.raises(desk_actions.NotPermitted):
            desk_actions.accept(desk, dossier_id, officer, MONDAY)
        with pytest.raises(desk_actions.NotPermitted):
            desk_actions.reply(desk, dossier_id, officer, "xin chào", MONDAY)
    with Session(engine) as session:
        after = session.get(Dossier, dossier_id)
        assert after is not None and after.status == "submitted"
    assert outbox_rows(engine) == before
    with session_scope(engine) as session:
        user, _ = create_staff(session, username="lan.ttphcc", full_name="Lan",
                               agency_code=dossier.agency_code, role=Role.DESK_OFFICER)  # fmt: skip
        officer = member(user)
    decision = desk_actions.accept(desk, dossier_id, officer, MONDAY)
    assert decision.after.status.value == "accepted" and outbox_rows(engine) == before + 1
