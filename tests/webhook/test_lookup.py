"""Public lookup by code: HTML for people, JSON for machines, 404 that helps, no personal data."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from core.dossier import Action, Actor, Command, MissingItem
from core.flows import NO_ONESTOP
from core.messages import render
from storage.db import session_scope
from storage.dossiers import apply_command, submit_dossier
from storage.models import ChannelIdentity, Citizen, Dossier
from webhook.app import create_app
from webhook.settings import Settings

NAME, PHONE, ID_NUMBER = "Trần Thị Bích", "+84987654321", "072190001234"


@pytest.fixture
def accepted_code(client: TestClient) -> str:
    """A birth registration by a real-looking citizen, accepted at the desk."""
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    procedure = next(p for p in runtime.catalog.procedures.values() if p.slug == "ho-kinh-doanh")
    agency = runtime.catalog.receiving_agencies(procedure)[0]
    at = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
    with session_scope(runtime.engine) as session:
        citizen = Citizen(full_name=NAME, phone=PHONE, id_number=ID_NUMBER)
        session.add(citizen)
        session.flush()
        session.add(ChannelIdentity(citizen_id=citizen.id, channel="telegram", external_id="77"))
        dossier, _ = submit_dossier(
            session,
            catalog=runtime.catalog,
            calendar=runtime.calendar,
            procedure_code=procedure.code,
            agency_code=agency.code,
            citizen_id=citizen.id,
            channel="telegram",
            at=at,
        )
        apply_command(
            session,
            dossier.id,  # type: ignore[arg-type]
            Command(Action.ACCEPT, Actor.DESK_OFFICER, at),
            catalog=runtime.catalog,
            calendar=runtime.calendar,
            rules=NO_ONESTOP,
        )
    return dossier.code


def test_lookup_page_shows_status_in_words_and_the_appointment(
    client: TestClient, accepted_code: str
) -> None:
    response = client.get(f"/lookup/{accepted_code}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert accepted_code in page
    assert "Đã tiếp nhận" in page
    assert '<dd id="procedure">Đăng ký thành lập hộ kinh doanh</dd>' in page  # its name, whole
    assert "10/12/2026" in page  # 3 working days after Monday 7/12
    assert 'name="viewport"' in page  # made for phones
    english = client.get(f"/lookup/{accepted_code}?lang=en").text
    assert "Accepted" in english and "Appointment date" in english
    assert '<dd id="procedure">Household business registration</dd>' in english


def test_lookup_json_for_machines(client: TestClient, accepted_code: str) -> None:
    response = client.get(f"/lookup/{accepted_code}", headers={"Accept": "application/json"})
    assert response.status_code == 200
    body = response.json()
    assert body["code"] == accepted_code
    assert body["status"] == "accepted"
    assert body["national_status_code"] == 2
    assert body["appointment_date"] == "2026-12-10"
    assert body["next_step"]


def test_lookup_reveals_no_personal_data(client: TestClient, accepted_code: str) -> None:
    for headers in ({}, {"Accept": "application/json"}):
        text = client.get(f"/lookup/{accepted_code}", headers=headers).text
        for secret in (NAME, "Bích", PHONE, "987654321", ID_NUMBER):
            assert secret not in text


def test_a_status_change_shows_at_once_and_the_one_stop_code_finds_it(
    client: TestClient, accepted_code: str
) -> None:
    """Nothing between the database and the page keeps an old status (no cache, no snapshot)."""
    as_json = {"Accept": "application/json"}
    assert client.get(f"/lookup/{accepted_code}", headers=as_json).json()["status"] == "accepted"
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    with session_scope(runtime.engine) as session:
        dossier = session.exec(select(Dossier).where(Dossier.code == accepted_code)).one()
        dossier.official_code = "000.00.12.H49-261207-0042"
        forward = Command(Action.FORWARD, Actor.DESK_OFFICER, datetime.now(UTC))
        apply_command(
            session,
            dossier.id,  # type: ignore[arg-type]
            forward,
            catalog=runtime.catalog,
            calendar=runtime.calendar,
            rules=NO_ONESTOP,
        )
    for typed in (accepted_code, " 000.00.12.h49-261207-0042 "):
        answer = client.get(f"/lookup/{typed}", headers=as_json)
        assert answer.status_code == 200, typed
        assert answer.json()["code"] == accepted_code
        assert answer.json()["status"] == "processing"
    page = client.get(f"/lookup/{accepted_code}").text
    assert f'<dd id="status" class="status">{render("status.processing", "vi")}</dd>' in page


def test_sloppy_code_in_the_url_still_finds_the_dossier(
    client: TestClient, accepted_code: str
) -> None:
    sloppy = accepted_code.lower().replace("-0001", "-1")
    response = client.get(f"/lookup/{sloppy}", headers={"Accept": "application/json"})
    assert response.status_code == 200 and response.json()["code"] == accepted_code


def test_unknown_code_gets_a_helpful_404(client: TestClient, accepted_code: str) -> None:
    unknown = accepted_code.replace("0001", "0042")
    page = client.get(f"/lookup/{unknown}")
    assert page.status_code == 404
    assert "Không tìm thấy hồ sơ" in page.text and "<form" in page.text
    as_json = client.get(f"/lookup/{unknown}", headers={"Accept": "application/json"})
    assert as_json.status_code == 404 and as_json.json()["error"] == "not_found"


def test_lookup_form_redirects_to_the_canonical_code(
    client: TestClient, accepted_code: str
) -> None:
    form = client.get("/lookup")
    assert form.status_code == 200 and 'name="code"' in form.text
    typed = f"  {accepted_code.lower()} "
    response = client.get("/lookup", params={"code": typed}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/lookup/{accepted_code}"
    bad = client.get("/lookup", params={"code": "xin chào"})
    assert bad.status_code == 400 and "chưa đúng dạng" in bad.text


def test_healthz_reports_the_database(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"ok": True, "database": "ok", "media": "ok"}


def test_healthz_checks_redis_when_configured(settings: Settings, redis_url: str) -> None:
    for url, healthy in ((redis_url, True), ("redis://127.0.0.1:1/0", False)):
        app = create_app(settings.model_copy(update={"redis_url": url}))
        with TestClient(app, base_url="https://testserver") as test_client:
            response = test_client.get("/healthz")
        app.state.runtime.engine.dispose()
        assert response.json()["ok"] is healthy
        assert response.status_code == (200 if healthy else 503)


def test_the_timeline_shows_each_step_with_its_day_and_the_one_now(
    client: TestClient, accepted_code: str
) -> None:
    page = client.get(f"/lookup/{accepted_code}").text
    assert '<ol class="timeline" id="timeline">' in page
    current = page.split('aria-current="step"', 1)[1].split("</li>", 1)[0]
    assert 'data-status="accepted"' in current and "07/12/2026" in current
    assert "10/12/2026" in current  # the appointment, with the receipt
    assert render("next_step.accepted", "vi") in current  # what to do now
    assert render("lookup.notify", "vi") in page
    steps = client.get(f"/lookup/{accepted_code}", headers={"Accept": "application/json"})
    assert steps.json()["steps"] == [
        {"status": "submitted", "title": "Đã nộp hồ sơ", "state": "done", "date": "2026-12-07"},
        {"status": "accepted", "title": "Đã tiếp nhận", "state": "current", "date": "2026-12-07"},
        {"status": "processing", "title": "Đang giải quyết", "state": "upcoming", "date": None},
        {"status": "result_ready", "title": "Đã có kết quả", "state": "upcoming", "date": None},
        {"status": "returned", "title": "Đã trả kết quả", "state": "upcoming", "date": None},
    ]  # fmt: skip


def test_a_supplement_round_is_a_step_without_its_reason_or_who_asked(
    client: TestClient,
) -> None:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    procedure = runtime.catalog.procedure_by_slug("ho-kinh-doanh")
    monday = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
    with session_scope(runtime.engine) as session:
        dossier, _ = submit_dossier(
            session, catalog=runtime.catalog, calendar=runtime.calendar,
            procedure_code=procedure.code,
            agency_code=runtime.catalog.receiving_agencies(procedure)[0].code,
            citizen_id=None, channel="web", at=monday,
        )  # fmt: skip
        reason = "Ảnh tờ khai bị lóa, chụp lại giúp"
        missing = (MissingItem(procedure.components[0].code, reason),)
        supplement = Command(Action.REQUEST_SUPPLEMENT, Actor.DESK_OFFICER,
                             datetime(2026, 12, 8, 3, 0, tzinfo=UTC), missing=missing)  # fmt: skip
        apply_command(session, dossier.id, supplement, catalog=runtime.catalog,  # type: ignore[arg-type]
                      calendar=runtime.calendar, rules=NO_ONESTOP)  # fmt: skip
        code = dossier.code
    body = client.get(f"/lookup/{code}", headers={"Accept": "application/json"}).json()
    assert [(s["status"], s["state"], s["date"]) for s in body["steps"]] == [
        ("submitted", "done", "2026-12-07"),
        ("supplement_requested", "current", "2026-12-08"),
        ("accepted", "upcoming", None),
        ("processing", "upcoming", None),
        ("result_ready", "upcoming", None),
        ("returned", "upcoming", None),
    ]
    for headers in ({}, {"Accept": "application/json"}):
        text = client.get(f"/lookup/{code}", headers=headers).text
        assert "lóa" not in text and "chụp lại" not in text
