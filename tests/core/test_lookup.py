"""The lookup timeline from a dossier's status changes, written out by hand."""

from __future__ import annotations

from datetime import date

from core.dossier import Status
from core.lookup import Step, StepState, timeline

S = Status
DONE, NOW, TO_COME = StepState.DONE, StepState.CURRENT, StepState.UPCOMING


def test_a_submitted_dossier_shows_the_road_ahead_without_days() -> None:
    steps = timeline(S.SUBMITTED, date(2026, 11, 2), [(S.SUBMITTED, date(2026, 11, 2))])
    assert steps == (
        Step(S.SUBMITTED, NOW, date(2026, 11, 2)),
        Step(S.ACCEPTED, TO_COME),
        Step(S.PROCESSING, TO_COME),
        Step(S.RESULT_READY, TO_COME),
        Step(S.RETURNED, TO_COME),
    )


def test_a_supplement_round_and_an_extension_are_steps_with_their_days() -> None:
    changes = [
        (S.SUBMITTED, date(2026, 11, 2)),
        (S.SUPPLEMENT_REQUESTED, date(2026, 11, 3)),
        (S.RESUBMITTED, date(2026, 11, 4)),
        (S.ACCEPTED, date(2026, 11, 5)),
        (S.PROCESSING, date(2026, 11, 5)),
        (S.EXTENDED, date(2026, 11, 20)),
    ]
    assert timeline(S.EXTENDED, date(2026, 11, 2), changes) == (
        Step(S.SUBMITTED, DONE, date(2026, 11, 2)),
        Step(S.SUPPLEMENT_REQUESTED, DONE, date(2026, 11, 3)),
        Step(S.RESUBMITTED, DONE, date(2026, 11, 4)),
        Step(S.ACCEPTED, DONE, date(2026, 11, 5)),
        Step(S.PROCESSING, DONE, date(2026, 11, 5)),
        Step(S.EXTENDED, NOW, date(2026, 11, 20)),
        Step(S.RESULT_READY, TO_COME),
        Step(S.RETURNED, TO_COME),
    )


def test_a_returned_dossier_has_every_step_done_and_nothing_to_come() -> None:
    changes = [
        (S.SUBMITTED, date(2026, 11, 2)),
        (S.ACCEPTED, date(2026, 11, 3)),
        (S.PROCESSING, date(2026, 11, 3)),
        (S.RESULT_READY, date(2026, 11, 10)),
        (S.RETURNED, date(2026, 11, 12)),
    ]
    steps = timeline(S.RETURNED, date(2026, 11, 2), changes)
    assert [(s.status, s.state) for s in steps] == [
        (S.SUBMITTED, DONE), (S.ACCEPTED, DONE), (S.PROCESSING, DONE),
        (S.RESULT_READY, DONE), (S.RETURNED, NOW),
    ]  # fmt: skip


def test_a_refused_dossier_ends_there() -> None:
    changes = [(S.SUBMITTED, date(2026, 11, 2)), (S.REFUSED, date(2026, 11, 3))]
    assert timeline(S.REFUSED, date(2026, 11, 2), changes) == (
        Step(S.SUBMITTED, DONE, date(2026, 11, 2)),
        Step(S.REFUSED, NOW, date(2026, 11, 3)),
    )


def test_without_an_audit_trail_the_submission_day_and_the_status_still_show() -> None:
    assert timeline(S.ACCEPTED, date(2026, 11, 2), []) == (
        Step(S.SUBMITTED, DONE, date(2026, 11, 2)),
        Step(S.ACCEPTED, NOW, date(2026, 11, 2)),
        Step(S.PROCESSING, TO_COME),
        Step(S.RESULT_READY, TO_COME),
        Step(S.RETURNED, TO_COME),
    )


def test_a_step_has_a_title_in_each_language_and_plain_json() -> None:
    step = Step(S.ACCEPTED, DONE, date(2026, 11, 3))
    assert step.title("vi") == "Đã tiếp nhận" and step.title("en") == "Received"
    assert step.as_json("en") == {
        "status": "accepted", "title": "Received", "state": "done", "date": "2026-11-03",
    }  # fmt: skip
