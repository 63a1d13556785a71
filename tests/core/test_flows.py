"""The effects of a dossier's changes, written out here as the desk would describe them: who is
told what, when the one-stop system hears of it, and what is never sent."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from core.calendar import WorkingCalendar
from core.catalog import Catalog, Procedure
from core.dossier import (
    Action,
    Actor,
    Command,
    Decision,
    DossierFacts,
    MissingItem,
    Status,
    decide,
)
from core.flows import (
    NO_ONESTOP,
    Audience,
    FlowRules,
    ForwardOn,
    transfer_effects,
    transfer_refusal,
    transition_effects,
)

VN = ZoneInfo("Asia/Ho_Chi_Minh")
MONDAY_9 = datetime(2026, 12, 7, 9, 0, tzinfo=VN)
AGENCY = "desk-1"
CONNECTED = FlowRules({AGENCY: ForwardOn.ACCEPT})


@pytest.fixture
def procedure(catalog: Catalog) -> Procedure:
    return next(p for p in catalog.procedures.values() if p.slug == "ho-kinh-doanh")


def _decide(
    procedure: Procedure,
    calendar: WorkingCalendar,
    status: Status,
    action: Action,
    actor: Actor = Actor.DESK_OFFICER,
    **facts: object,
) -> Decision:
    command = Command(
        action,
        actor,
        MONDAY_9,
        reason="Lý do",
        missing=(MissingItem(procedure.components[0].code, "Ảnh mờ"),),
    )
    before = DossierFacts(code="X-1", status=status, **facts)  # type: ignore[arg-type]
    return decide(before, command, procedure=procedure, calendar=calendar)


def _effects(
    decision: Decision, *, rules: FlowRules = NO_ONESTOP, forwarded: bool = False,
    reachable: bool = True, subscribed: bool = False,
) -> list[tuple[str, str, str]]:  # fmt: skip
    found = transition_effects(
        decision,
        agency_code=AGENCY,
        citizen_reachable=reachable,
        forwarded=forwarded,
        rules=rules,
        sms_subscribed=subscribed,
    )
    return [(e.audience.value, e.name, e.template) for e in found]


def test_the_citizens_own_step_is_not_pushed_back_only_the_officers_hear_of_it(
    procedure: Procedure, calendar: WorkingCalendar
) -> None:
    submitted = _decide(procedure, calendar, Status.DRAFT, Action.SUBMIT, Actor.CITIZEN)
    assert _effects(submitted) == [("officers", "staffbot", "alert.new_dossier")]


def test_a_desk_step_tells_the_citizen(procedure: Procedure, calendar: WorkingCalendar) -> None:
    refused = _decide(procedure, calendar, Status.SUBMITTED, Action.REFUSE)
    assert _effects(refused) == [("citizen", "notice", "notice.refused")]
    assert _effects(refused, reachable=False) == []


def test_the_returned_result_asks_for_a_rating_after_its_notice(
    procedure: Procedure, calendar: WorkingCalendar
) -> None:
    returned = _decide(procedure, calendar, Status.RESULT_READY, Action.RETURN_RESULT)
    assert _effects(returned) == [
        ("citizen", "notice", "notice.returned"),
        ("citizen", "rating", "notice.rating_request"),
    ]
    assert _effects(returned, reachable=False) == []  # nobody to ask


def test_phones_subscribed_by_sms_get_the_public_status_of_the_desks_steps(
    procedure: Procedure, calendar: WorkingCalendar
) -> None:
    accepted = _decide(procedure, calendar, Status.SUBMITTED, Action.ACCEPT)
    assert _effects(accepted, reachable=False, subscribed=True) == [
        ("sms_subscribers", "sms", "sms.reply")
    ]
    [push] = transition_effects(accepted, agency_code=AGENCY, citizen_reachable=False,
                                forwarded=False, rules=NO_ONESTOP, sms_subscribed=True)  # fmt: skip
    assert push.values["text"].startswith("HS X-1: Da tiep nhan. Hen tra: ")  # the public status
    returned = _decide(procedure, calendar, Status.RESULT_READY, Action.RETURN_RESULT)
    assert _effects(returned, subscribed=True) == [
        ("citizen", "notice", "notice.returned"),
        ("citizen", "rating", "notice.rating_request"),  # its buttons need a chat
        ("sms_subscribers", "sms", "sms.reply"),
    ]
    back = _decide(procedure, calendar, Status.SUPPLEMENT_REQUESTED, Action.RESUBMIT, Actor.CITIZEN)
    assert [e[0] for e in _effects(back, subscribed=True)] == ["desk", "officers"]  # their own
    moved = transfer_effects("X-1", {"vi": "Nơi khác"}, False, True)
    assert [(e.audience.value, e.template) for e in moved] == [
        ("sms_subscribers", "notice.transferred")
    ]


def test_the_desk_is_alerted_when_the_citizen_acts_between_its_steps(
    procedure: Procedure, calendar: WorkingCalendar
) -> None:
    back = _decide(procedure, calendar, Status.SUPPLEMENT_REQUESTED, Action.RESUBMIT, Actor.CITIZEN)
    assert _effects(back) == [
        ("desk", "alert", "alert.resubmitted"),
        ("officers", "staffbot", "alert.resubmitted"),
    ]
    gone = _decide(procedure, calendar, Status.PROCESSING, Action.WITHDRAW, Actor.CITIZEN)
    assert _effects(gone) == [
        ("desk", "alert", "alert.withdrawn"),
        ("officers", "staffbot", "alert.withdrawn"),
    ]


def test_without_a_onestop_system_nothing_is_sent_there(
    procedure: Procedure, calendar: WorkingCalendar
) -> None:
    accepted = _decide(procedure, calendar, Status.SUBMITTED, Action.ACCEPT)
    assert _effects(accepted) == [("citizen", "notice", "notice.accepted")]


def test_an_accepted_dossier_goes_to_the_onestop_system_once_then_as_updates(
    procedure: Procedure, calendar: WorkingCalendar
) -> None:
    accepted = _decide(procedure, calendar, Status.SUBMITTED, Action.ACCEPT)
    assert _effects(accepted, rules=CONNECTED) == [
        ("citizen", "notice", "notice.accepted"),
        ("onestop", "onestop", "onestop.create"),
    ]
    (create,) = [
        e
        for e in transition_effects(
            accepted, agency_code=AGENCY, citizen_reachable=True, forwarded=False, rules=CONNECTED
        )
        if e.audience is Audience.ONESTOP
    ]
    step = create.values["step"]
    assert step["status"] == 2  # Được tiếp nhận
    assert step["appointment_date"] == "2026-12-10"  # three working days
    assert step["actor"] == "desk_officer" and step["at"] == MONDAY_9.isoformat()

    forwarded = _decide(
        procedure, calendar, Status.ACCEPTED, Action.FORWARD,
        received_at=MONDAY_9, appointment_date=date(2026, 12, 10),
    )  # fmt: skip
    assert _effects(forwarded, rules=CONNECTED, forwarded=True) == [
        ("citizen", "notice", "notice.forwarded"),
        ("onestop", "onestop", "onestop.update"),
    ]
    # Another agency of the same installation has no system: nothing goes there.
    assert _effects(forwarded, rules=FlowRules({"other": ForwardOn.ACCEPT})) == [
        ("citizen", "notice", "notice.forwarded")
    ]


def test_an_agency_may_forward_only_when_the_desk_presses_forward(
    procedure: Procedure, calendar: WorkingCalendar
) -> None:
    rules = FlowRules({AGENCY: ForwardOn.FORWARD})
    accepted = _decide(procedure, calendar, Status.SUBMITTED, Action.ACCEPT)
    assert _effects(accepted, rules=rules) == [("citizen", "notice", "notice.accepted")]
    forwarded = _decide(procedure, calendar, Status.ACCEPTED, Action.FORWARD)
    assert _effects(forwarded, rules=rules) == [
        ("citizen", "notice", "notice.forwarded"),
        ("onestop", "onestop", "onestop.create"),
    ]
    # A dossier refused before it was ever forwarded never reaches the system.
    refused = _decide(procedure, calendar, Status.SUBMITTED, Action.REFUSE)
    assert _effects(refused, rules=rules) == [("citizen", "notice", "notice.refused")]


def test_what_the_onestop_system_reported_is_not_echoed_back(
    procedure: Procedure, calendar: WorkingCalendar
) -> None:
    ready = _decide(procedure, calendar, Status.PROCESSING, Action.RESULT_READY, Actor.ONESTOP)
    assert _effects(ready, rules=CONNECTED, forwarded=True) == [
        ("citizen", "notice", "notice.result_ready")
    ]


def test_a_resubmission_is_sent_as_the_supplement_round(
    procedure: Procedure, calendar: WorkingCalendar
) -> None:
    back = _decide(procedure, calendar, Status.SUPPLEMENT_REQUESTED, Action.RESUBMIT, Actor.CITIZEN)
    (update,) = [
        e
        for e in transition_effects(
            back, agency_code=AGENCY, citizen_reachable=True, forwarded=True, rules=CONNECTED
        )
        if e.audience is Audience.ONESTOP
    ]
    assert update.template == "onestop.update" and update.values["supplement"] is True


def test_transfer_rules(catalog: Catalog, procedure: Procedure) -> None:
    desks = [a.code for a in catalog.receiving_agencies(procedure)]
    source, target = desks[0], desks[1]
    assert transfer_refusal(catalog, procedure, Status.ACCEPTED, source, target, "Sai nơi") is None
    assert (
        transfer_refusal(catalog, procedure, Status.ACCEPTED, source, source, "Sai nơi")
        == "admin.error.transfer_target"
    )
    assert (
        transfer_refusal(catalog, procedure, Status.RETURNED, source, target, "Sai nơi")
        == "admin.error.transfer_closed"
    )
    assert (
        transfer_refusal(catalog, procedure, Status.ACCEPTED, source, target, "  ")
        == "admin.error.reason_required"
    )
    notice = transfer_effects("X-1", {"vi": "Xã B", "en": "B"}, citizen_reachable=True)
    assert [(e.audience, e.template) for e in notice] == [(Audience.CITIZEN, "notice.transferred")]
    assert transfer_effects("X-1", {"vi": "Xã B"}, citizen_reachable=False) == ()
