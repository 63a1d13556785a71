"""The dossier state machine against a legal table written out here: every status, action and
actor; the national status codes; the rules."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from core.calendar import WorkingCalendar
from core.catalog import Catalog, Procedure
from core.dossier import (
    CLOSED,
    NATIONAL_STATUS_CODE,
    TRANSITIONS,
    Action,
    Actor,
    Command,
    DossierFacts,
    DossierRuleError,
    MissingItem,
    Status,
    allowed_actions,
    decide,
)
from core.notices import render_notice

VN = ZoneInfo("Asia/Ho_Chi_Minh")
MONDAY_9 = datetime(2026, 12, 7, 9, 0, tzinfo=VN)  # an ordinary working Monday


@pytest.fixture
def ho_kinh_doanh(catalog: Catalog) -> Procedure:
    """A 3-working-day procedure with a fee."""
    return next(p for p in catalog.procedures.values() if p.slug == "ho-kinh-doanh")


def facts(status: Status, **changes: object) -> DossierFacts:
    return DossierFacts(code="000.00.10.H53-261207-0001", status=status, **changes)  # type: ignore[arg-type]


def command_for(action: Action, actor: Actor, procedure: Procedure, at: datetime) -> Command:
    """A valid command for the action (reasons, missing items, new date filled in)."""
    first = procedure.components[0].code
    return Command(
        action,
        actor,
        at,
        reason="Lý do cụ thể",
        missing=(MissingItem(first, "Ảnh mờ"),),
        new_appointment_date=date(2026, 12, 18),
    )


def running_facts(status: Status) -> DossierFacts:
    return facts(
        status,
        received_at=MONDAY_9,
        appointment_date=date(2026, 12, 10),
        extended=status is Status.EXTENDED,
    )


S, DESK, CITIZEN, ONESTOP = Status, Actor.DESK_OFFICER, Actor.CITIZEN, Actor.ONESTOP
# The legal table written out by hand (Decree 61/2018, docs/domain.md), not read from
# TRANSITIONS, so a changed transition fails here.
# action → (from statuses, to status, who may, citizen notice)
LEGAL: dict[Action, tuple[set[Status], Status, set[Actor], str | None]] = {
    Action.SUBMIT: ({S.DRAFT}, S.SUBMITTED, {CITIZEN}, "notice.submitted"),
    Action.ACCEPT: ({S.SUBMITTED, S.RESUBMITTED}, S.ACCEPTED, {DESK}, "notice.accepted"),
    Action.REQUEST_SUPPLEMENT: (
        {S.SUBMITTED, S.RESUBMITTED, S.ACCEPTED, S.PROCESSING, S.EXTENDED},
        S.SUPPLEMENT_REQUESTED, {DESK, ONESTOP}, "notice.supplement_requested",
    ),
    Action.RESUBMIT: ({S.SUPPLEMENT_REQUESTED}, S.RESUBMITTED, {CITIZEN}, "notice.resubmitted"),
    Action.REFUSE: (
        {S.SUBMITTED, S.RESUBMITTED, S.ACCEPTED, S.PROCESSING, S.EXTENDED},
        S.REFUSED, {DESK, ONESTOP}, "notice.refused",
    ),
    Action.FORWARD: ({S.ACCEPTED}, S.PROCESSING, {DESK, ONESTOP}, "notice.forwarded"),
    Action.EXTEND: ({S.ACCEPTED, S.PROCESSING}, S.EXTENDED, {DESK, ONESTOP}, "notice.extended"),
    Action.RESULT_READY: (
        {S.ACCEPTED, S.PROCESSING, S.EXTENDED},
        S.RESULT_READY, {DESK, ONESTOP}, "notice.result_ready",
    ),
    Action.RETURN_RESULT: ({S.RESULT_READY}, S.RETURNED, {DESK, ONESTOP}, "notice.returned"),
    Action.WITHDRAW: (
        {S.SUBMITTED, S.RESUBMITTED, S.SUPPLEMENT_REQUESTED, S.ACCEPTED, S.PROCESSING,
         S.EXTENDED},
        S.WITHDRAWN, {CITIZEN, ONESTOP}, "notice.withdrawn",
    ),
    Action.STOP: (
        {S.ACCEPTED, S.PROCESSING, S.EXTENDED}, S.STOPPED, {DESK, ONESTOP}, "notice.stopped"
    ),
}  # fmt: skip

EVERY_CASE = [(status, action, actor) for status in Status for action in Action for actor in Actor]


@pytest.mark.parametrize(
    ("status", "action", "actor"), EVERY_CASE, ids=[f"{s}-{a}-{w}" for s, a, w in EVERY_CASE]
)
def test_every_status_action_and_actor_against_the_legal_table(
    status: Status,
    action: Action,
    actor: Actor,
    ho_kinh_doanh: Procedure,
    calendar: WorkingCalendar,
) -> None:
    sources, target, actors, notice = LEGAL[action]
    command = command_for(action, actor, ho_kinh_doanh, MONDAY_9)
    if status not in sources or actor not in actors:
        with pytest.raises(DossierRuleError) as raised:
            decide(running_facts(status), command, procedure=ho_kinh_doanh, calendar=calendar)
        if status is S.EXTENDED and action is Action.EXTEND:
            assert raised.value.reason == "extended_once"
        elif status not in sources:
            assert raised.value.reason == "transition_not_allowed"
        else:
            assert raised.value.reason == "actor_not_allowed"
        assert action not in allowed_actions(status, actor)  # no button for it
        return
    decision = decide(running_facts(status), command, procedure=ho_kinh_doanh, calendar=calendar)
    assert (decision.before.status, decision.after.status) == (status, target)
    assert action in allowed_actions(status, actor)
    assert decision.audit_note  # every step leaves an audit entry
    assert (decision.notice.key if decision.notice else None) == notice
    if decision.notice is not None:
        text = render_notice(decision.notice.key, decision.notice.values, "vi")
        assert "000.00.10.H53-261207-0001" in text


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (Status.SUBMITTED, Action.RESULT_READY),  # status moves forward only when a step is done
        (Status.SUBMITTED, Action.EXTEND),
        (Status.SUBMITTED, Action.FORWARD),
        (Status.ACCEPTED, Action.ACCEPT),
        (Status.SUPPLEMENT_REQUESTED, Action.ACCEPT),
        (Status.RESULT_READY, Action.REFUSE),
        (Status.RETURNED, Action.REQUEST_SUPPLEMENT),  # closed stays closed
        (Status.REFUSED, Action.ACCEPT),
        (Status.WITHDRAWN, Action.RESUBMIT),
        (Status.DRAFT, Action.ACCEPT),
    ],
)
def test_forbidden_transitions_are_refused_in_plain_words(
    status: Status, action: Action, ho_kinh_doanh: Procedure, calendar: WorkingCalendar
) -> None:
    with pytest.raises(DossierRuleError) as raised:
        decide(
            running_facts(status),
            command_for(action, Actor.DESK_OFFICER, ho_kinh_doanh, MONDAY_9),
            procedure=ho_kinh_doanh,
            calendar=calendar,
        )
    assert raised.value.reason == "transition_not_allowed"
    assert "Không thể" in raised.value.message("vi")
    assert "cannot" in raised.value.message("en")


def test_citizen_cannot_accept_and_officer_cannot_withdraw(
    ho_kinh_doanh: Procedure, calendar: WorkingCalendar
) -> None:
    for status, action, actor in [
        (Status.SUBMITTED, Action.ACCEPT, Actor.CITIZEN),
        (Status.ACCEPTED, Action.WITHDRAW, Actor.DESK_OFFICER),
        (Status.SUBMITTED, Action.ACCEPT, Actor.ONESTOP),  # the desk receives, the system not
    ]:
        with pytest.raises(DossierRuleError) as raised:
            decide(
                running_facts(status),
                command_for(action, actor, ho_kinh_doanh, MONDAY_9),
                procedure=ho_kinh_doanh,
                calendar=calendar,
            )
        assert raised.value.reason == "actor_not_allowed"


def test_accept_sets_the_appointment_in_working_days(
    ho_kinh_doanh: Procedure, calendar: WorkingCalendar
) -> None:
    friday_after_cutoff = datetime(2026, 12, 11, 15, 30, tzinfo=VN)
    decision = decide(
        facts(Status.SUBMITTED),
        Command(Action.ACCEPT, Actor.DESK_OFFICER, friday_after_cutoff),
        procedure=ho_kinh_doanh,
        calendar=calendar,
    )
    # After 15:00 on Friday → counts from Monday 14/12; + 3 working days → Thursday 17/12.
    assert decision.after.appointment_date == date(2026, 12, 17)
    text = render_notice(decision.notice.key, decision.notice.values, "vi")  # type: ignore[union-attr]
    assert "17/12/2026" in text
    assert "100.000 đồng" in text


def test_supplement_lists_everything_once_and_restarts_the_clock(
    ho_kinh_doanh: Procedure, calendar: WorkingCalendar
) -> None:
    components = ho_kinh_doanh.components
    missing = tuple(MissingItem(c.code, f"thiếu trang {i}") for i, c in enumerate(components))
    decision = decide(
        running_facts(Status.ACCEPTED),
        Command(Action.REQUEST_SUPPLEMENT, Actor.DESK_OFFICER, MONDAY_9, missing=missing),
        procedure=ho_kinh_doanh,
        calendar=calendar,
    )
    assert decision.after.appointment_date is None and decision.after.received_at is None
    text = render_notice(decision.notice.key, decision.notice.values, "vi")  # type: ignore[union-attr]
    for i, component in enumerate(components):
        assert f"{i + 1}. {component.name.vi}: thiếu trang {i}" in text
    # The resubmission is accepted later with a fresh appointment counted from that day.
    later = datetime(2026, 12, 15, 9, 0, tzinfo=VN)
    resubmitted = decide(
        decision.after,
        Command(Action.RESUBMIT, Actor.CITIZEN, later),
        procedure=ho_kinh_doanh,
        calendar=calendar,
    )
    accepted = decide(
        resubmitted.after,
        Command(Action.ACCEPT, Actor.DESK_OFFICER, later),
        procedure=ho_kinh_doanh,
        calendar=calendar,
    )
    assert accepted.after.appointment_date == date(2026, 12, 18)


def test_supplement_needs_items_with_reasons(
    ho_kinh_doanh: Procedure, calendar: WorkingCalendar
) -> None:
    first = ho_kinh_doanh.components[0].code
    for missing, reason in [
        ((), "supplement_empty"),
        ((MissingItem(first, "  "),), "supplement_reason_required"),
        ((MissingItem("khong-co", "x"),), "unknown_component"),
    ]:
        with pytest.raises(DossierRuleError) as raised:
            decide(
                facts(Status.SUBMITTED),
                Command(Action.REQUEST_SUPPLEMENT, Actor.DESK_OFFICER, MONDAY_9, missing=missing),
                procedure=ho_kinh_doanh,
                calendar=calendar,
            )
        assert raised.value.reason == reason


def test_refusal_needs_a_reason(ho_kinh_doanh: Procedure, calendar: WorkingCalendar) -> None:
    with pytest.raises(DossierRuleError) as raised:
        decide(
            facts(Status.SUBMITTED),
            Command(Action.REFUSE, Actor.DESK_OFFICER, MONDAY_9, reason=" "),
            procedure=ho_kinh_doanh,
            calendar=calendar,
        )
    assert raised.value.reason == "reason_required"


def extend(
    state: DossierFacts, at: datetime, new: date, procedure: Procedure, calendar: WorkingCalendar
) -> DossierFacts:
    return decide(
        state,
        Command(
            Action.EXTEND, Actor.DESK_OFFICER, at, reason="Chờ xác minh", new_appointment_date=new
        ),
        procedure=procedure,
        calendar=calendar,
    ).after


def test_extension_only_once(ho_kinh_doanh: Procedure, calendar: WorkingCalendar) -> None:
    state = running_facts(Status.PROCESSING)  # due Thursday 10/12
    once = extend(state, MONDAY_9, date(2026, 12, 16), ho_kinh_doanh, calendar)
    assert once.status is Status.EXTENDED and once.appointment_date == date(2026, 12, 16)
    with pytest.raises(DossierRuleError) as raised:
        extend(once, MONDAY_9, date(2026, 12, 22), ho_kinh_doanh, calendar)
    assert raised.value.reason == "extended_once"
    assert "một lần" in raised.value.message("vi")


def test_extension_less_than_a_working_day_before_due_is_refused(
    ho_kinh_doanh: Procedure, calendar: WorkingCalendar
) -> None:
    state = running_facts(Status.PROCESSING)  # due Thursday 10/12
    wednesday = datetime(2026, 12, 9, 16, 0, tzinfo=VN)
    assert extend(state, wednesday, date(2026, 12, 16), ho_kinh_doanh, calendar).extended
    thursday = datetime(2026, 12, 10, 8, 0, tzinfo=VN)
    with pytest.raises(DossierRuleError) as raised:
        extend(state, thursday, date(2026, 12, 16), ho_kinh_doanh, calendar)
    assert raised.value.reason == "extension_too_late"


def test_extension_date_is_at_most_a_year_later(
    ho_kinh_doanh: Procedure, calendar: WorkingCalendar
) -> None:
    state = running_facts(Status.PROCESSING)  # due Thursday 10/12/2026
    assert extend(state, MONDAY_9, date(2027, 12, 10), ho_kinh_doanh, calendar).extended
    for too_far in (date(2027, 12, 13), date(9999, 12, 31)):
        with pytest.raises(DossierRuleError) as raised:
            extend(state, MONDAY_9, too_far, ho_kinh_doanh, calendar)
        assert raised.value.reason == "extension_too_far"
        assert "10/12/2027" in raised.value.message("vi")


def test_extension_date_must_be_later_and_a_working_day(
    ho_kinh_doanh: Procedure, calendar: WorkingCalendar
) -> None:
    state = running_facts(Status.PROCESSING)
    for not_later in (date(2026, 12, 9), date(2026, 12, 10)):  # before, or the due date itself
        with pytest.raises(DossierRuleError) as earlier:
            extend(state, MONDAY_9, not_later, ho_kinh_doanh, calendar)
        assert earlier.value.reason == "extension_date_invalid"
    with pytest.raises(DossierRuleError) as sunday:
        extend(state, MONDAY_9, date(2026, 12, 13), ho_kinh_doanh, calendar)
    assert sunday.value.reason == "extension_not_working_day"


def test_every_status_maps_to_a_national_code_and_has_words() -> None:
    from core.messages import render

    # DVCQG: 1 submitted, 2 received, 3 refused, 4 processing, 5 supplement requested,
    # 6 payment requested (no such state: fees are paid at the counter), 7 withdrawn,
    # 8 stopped, 9 result ready, 10 returned. A draft never leaves the gateway.
    assert NATIONAL_STATUS_CODE == {
        S.DRAFT: 1, S.SUBMITTED: 1, S.RESUBMITTED: 1, S.ACCEPTED: 2, S.REFUSED: 3,
        S.PROCESSING: 4, S.EXTENDED: 4, S.SUPPLEMENT_REQUESTED: 5, S.WITHDRAWN: 7,
        S.STOPPED: 8, S.RESULT_READY: 9, S.RETURNED: 10,
    }  # fmt: skip
    for status in Status:
        assert render(f"status.{status.value}", "vi")
        assert render(f"next_step.{status.value}", "en")


def test_closed_dossiers_offer_no_action() -> None:
    assert {S.REFUSED, S.RETURNED, S.WITHDRAWN, S.STOPPED} == CLOSED
    for status in CLOSED:
        for actor in Actor:
            assert allowed_actions(status, actor) == []
    assert Action.ACCEPT in allowed_actions(Status.SUBMITTED, Actor.DESK_OFFICER)
    assert Action.ACCEPT not in allowed_actions(Status.SUBMITTED, Actor.CITIZEN)


def test_every_transition_names_existing_templates() -> None:
    from core.messages import has_message

    for transition in TRANSITIONS:
        assert has_message(transition.audit)
        assert transition.notice is None or has_message(transition.notice)
