"""Demo dossiers for a fresh embedded install, made through the real submission and transitions."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session

from core.calendar import WorkingCalendar
from core.catalog import Catalog
from core.channels import Channel
from core.dossier import Action, Actor, Command, MissingItem
from core.flows import NO_ONESTOP
from core.messages import render
from storage.dossiers import apply_command, count_dossiers, submit_dossier


def seed_demo(
    session: Session, *, catalog: Catalog, calendar: WorkingCalendar, now: datetime
) -> list[str]:
    """On an empty database, one dossier per procedure at different steps; returns their codes."""
    if count_dossiers(session):
        return []
    codes: list[str] = []
    steps: list[list[Command]] = [
        [],
        [Command(Action.ACCEPT, Actor.DESK_OFFICER, now)],
        [],  # supplement requested below, needs the procedure's first component
        [
            Command(Action.ACCEPT, Actor.DESK_OFFICER, now),
            Command(Action.FORWARD, Actor.DESK_OFFICER, now),
            Command(Action.RESULT_READY, Actor.ONESTOP, now),
        ],
        [Command(Action.ACCEPT, Actor.DESK_OFFICER, now)],
    ]
    for procedure, commands in zip(catalog.procedures.values(), steps, strict=False):
        agency = catalog.receiving_agencies(procedure)[0]
        dossier, _ = submit_dossier(
            session,
            catalog=catalog,
            calendar=calendar,
            procedure_code=procedure.code,
            agency_code=agency.code,
            citizen_id=None,
            channel=Channel.WEB,
            at=now - timedelta(minutes=5),
        )
        assert dossier.id is not None
        if not commands and len(codes) == 2:
            first = procedure.components[0].code
            commands = [
                Command(
                    Action.REQUEST_SUPPLEMENT,
                    Actor.DESK_OFFICER,
                    now,
                    missing=(MissingItem(first, render("demo.supplement_reason")),),
                )
            ]
        for command in commands:
            apply_command(
                session, dossier.id, command, catalog=catalog, calendar=calendar, rules=NO_ONESTOP
            )
        codes.append(dossier.code)
    return codes
