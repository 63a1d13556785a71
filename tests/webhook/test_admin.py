"""The desk panel over HTTP on SQLite and PostgreSQL: sign-in, forced password change, lockout,
CSRF, agency isolation, every desk action through the state machine with its outbox notice,
forms 01–05, accounts, canned replies, undelivered messages, reports."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import zxingcpp
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select
from sqlmodel import Session

from core.catalog import Catalog
from core.dossier import Action
from core.flows import NO_ONESTOP
from core.messages import render
from core.staff import ACCOUNT_THROTTLE, Role
from storage.db import session_scope
from storage.models import (
    AccountEvent,
    CannedReply,
    Dossier,
    OutboxMessage,
    StaffUser,
    StatusEvent,
    ThreadMessage,
)
from storage.staff import create_staff
from tests.dossiers import act, citizen_dossier
from tests.servers import wait_until
from webhook.app import create_app
from webhook.runtime import Runtime
from webhook.settings import Settings

PASSWORD = "Một-cửa-2026!"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def app_runtime(settings: Settings) -> Iterator[tuple[TestClient, Runtime]]:
    app = create_app(settings)
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
        yield client, app.state.runtime
    app.state.runtime.engine.dispose()


def first_agency(catalog: Catalog, slug: str = "ho-kinh-doanh") -> str:
    return catalog.receiving_agencies(catalog.procedure_by_slug(slug))[0].code


def other_agency(catalog: Catalog, slug: str = "ho-kinh-doanh") -> str:
    return catalog.receiving_agencies(catalog.procedure_by_slug(slug))[1].code


def new_account(
    runtime: Runtime, username: str, agency: str, role: Role = Role.DESK_OFFICER
) -> str:
    with session_scope(runtime.engine) as session:
        _, one_time = create_staff(
            session, username=username, full_name=username.title(), agency_code=agency, role=role
        )
    return one_time


class Desk:
    """A staff member's browser session (cookies, CSRF token of the last page)."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.token = ""

    def get(self, url: str, **kwargs: object) -> object:
        response = self.client.get(url, **kwargs)  # type: ignore[arg-type]
        found = CSRF.search(response.text)
        if found:
            self.token = found.group(1)
        return response

    def post(self, url: str, data: dict[str, str] | None = None, **kwargs: object) -> object:
        return self.client.post(url, data={"csrf": self.token, **(data or {})}, **kwargs)  # type: ignore[arg-type]

    def login(self, username: str, password: str) -> object:
        self.get("/admin/login")
        return self.post("/admin/login", {"username": username, "password": password})


def signed_in(
    client: TestClient, runtime: Runtime, username: str, agency: str, role: Role = Role.DESK_OFFICER
) -> Desk:
    """A fresh account that signed in with its one-time password and chose its own."""
    one_time = new_account(runtime, username, agency, role)
    client.cookies.clear()
    desk = Desk(client)
    assert desk.login(username, one_time).status_code == 303  # type: ignore[attr-defined]
    desk.get("/admin/password")
    response = desk.post(
        "/admin/password", {"current": one_time, "new": PASSWORD, "repeat": PASSWORD}
    )
    assert response.status_code == 303, response.text  # type: ignore[attr-defined]
    desk.get("/admin")
    return desk


def rows(runtime: Runtime, model: type) -> list:  # type: ignore[type-arg]
    """Every row, in the order written (PostgreSQL returns an updated row wherever it now lies)."""
    key = model.__table__.primary_key.columns  # type: ignore[attr-defined]
    with Session(runtime.engine) as session:
        return list(session.execute(select(model).order_by(*key)).scalars())


def test_first_sign_in_forces_a_password_change(app_runtime: tuple[TestClient, Runtime]) -> None:
    client, runtime = app_runtime
    assert client.get("/admin").headers["location"] == "/admin/login"
    one_time = new_account(runtime, "lan.ttphcc", first_agency(runtime.catalog))
    desk = Desk(client)
    assert desk.login("lan.ttphcc", one_time).headers["location"] == "/admin"  # type: ignore[attr-defined]
    # Every page leads to the password page until it is changed.
    assert client.get("/admin").headers["location"] == "/admin/password"
    assert client.get("/admin/reports").headers["location"] == "/admin/password"
    desk.get("/admin/password")
    weak = desk.post("/admin/password", {"current": one_time, "new": "lan123", "repeat": "lan123"})
    assert weak.status_code == 400 and "ít nhất 10 ký tự" in weak.text  # type: ignore[attr-defined]
    wrong = desk.post("/admin/password", {"current": "guess", "new": PASSWORD, "repeat": PASSWORD})
    assert "Mật khẩu hiện tại không đúng" in wrong.text  # type: ignore[attr-defined]
    old_cookie = client.cookies.get("hcc_staff")
    done = desk.post("/admin/password", {"current": one_time, "new": PASSWORD, "repeat": PASSWORD})
    assert done.headers["location"] == "/admin?done=password"  # type: ignore[attr-defined]
    assert client.get("/admin").status_code == 200
    # The session from before the change is over; the one-time password no longer works.
    stale = TestClient(
        client.app,
        base_url="https://testserver",
        follow_redirects=False,
        cookies={"hcc_staff": old_cookie or ""},
    )
    assert stale.get("/admin").headers["location"] == "/admin/login"
    client.cookies.clear()
    assert Desk(client).login("lan.ttphcc", one_time).status_code == 401  # type: ignore[attr-defined]
    [user] = rows(runtime, StaffUser)
    assert user.password_hash.startswith("$argon2id$")


def _argon2_seconds() -> float:
    """What one argon2 verification of a wrong password costs on this machine now."""
    hasher = PasswordHasher()
    hashed = hasher.hash("a-password-of-someone")
    times = []
    for _ in range(3):
        start = time.perf_counter()
        with pytest.raises(VerificationError):
            hasher.verify(hashed, "a-guess")
        times.append(time.perf_counter() - start)
    return min(times)


def _timed_login(desk: Desk, username: str, password: str) -> tuple[int, str, float]:
    desk.get("/admin/login")
    start = time.perf_counter()
    response = desk.post("/admin/login", {"username": username, "password": password})
    elapsed = time.perf_counter() - start
    alert = re.search(r'role="alert">([^<]*)<', response.text)  # type: ignore[attr-defined]
    return response.status_code, alert.group(1) if alert else "", elapsed  # type: ignore[attr-defined]


def test_an_unknown_name_is_answered_like_a_wrong_password_and_as_slowly(
    app_runtime: tuple[TestClient, Runtime],
) -> None:
    """Status, message and time say nothing about whether an account exists: an unknown name is
    checked against a dummy argon2 hash, so both answers take the argon2 time."""
    client, runtime = app_runtime
    new_account(runtime, "lan.ttphcc", first_agency(runtime.catalog))
    desk = Desk(client)
    unknown = [_timed_login(desk, "nobody.ttphcc", "whatever") for _ in range(3)]
    wrong = [_timed_login(desk, "lan.ttphcc", "whatever") for _ in range(3)]
    assert {(status, text) for status, text, _ in unknown + wrong} == {
        (401, "Tài khoản hoặc mật khẩu không đúng.")
    }
    argon2 = _argon2_seconds()
    fastest_unknown = min(t for *_, t in unknown)
    fastest_wrong = min(t for *_, t in wrong)
    assert fastest_unknown > 0.5 * argon2 and fastest_wrong > 0.5 * argon2, (argon2, unknown, wrong)
    assert max(fastest_unknown, fastest_wrong) < 3 * min(fastest_unknown, fastest_wrong)
    assert "hcc_staff" not in client.cookies


def test_hammering_an_account_from_one_address_does_not_keep_its_officer_out(
    app_runtime: tuple[TestClient, Runtime],
) -> None:
    """No lock: the guesser's address waits longer and longer (429, the same for every name),
    the officer signs in from their own address."""
    client, runtime = app_runtime
    one_time = new_account(runtime, "lan.ttphcc", first_agency(runtime.catalog))
    attacker = Desk(TestClient(client.app, follow_redirects=False, client=("203.0.113.9", 4000)))
    answers = set()
    for name in ("lan.ttphcc", "nobody.ttphcc"):
        for _ in range(int(ACCOUNT_THROTTLE.free) + 1):  # + 1: the count fades while they type
            assert attacker.login(name, "whatever").status_code == 401  # type: ignore[attr-defined]
        attacker.get("/admin/login")
        limited = attacker.post("/admin/login", {"username": name, "password": one_time})
        assert int(limited.headers["retry-after"]) >= 1  # type: ignore[attr-defined]
        alert = re.search(r'role="alert">([^<]*)<', limited.text)  # type: ignore[attr-defined]
        answers.add((limited.status_code, alert.group(1) if alert else ""))  # type: ignore[attr-defined]
    [(status, text)] = answers  # the right password, too, and the same for a name nobody has
    assert status == 429 and "thử lại sau" in text, text
    assert "hcc_staff" not in attacker.client.cookies
    officer = Desk(TestClient(client.app, follow_redirects=False, client=("198.51.100.7", 4000)))
    assert officer.login("lan.ttphcc", one_time).status_code == 303  # type: ignore[attr-defined]
    assert [(e.kind, e.username, e.address) for e in rows(runtime, AccountEvent)][1:] == [
        ("limited", "lan.ttphcc", "203.0.113.9"),
        ("signed_in", "lan.ttphcc", "198.51.100.7"),
    ]


def test_sign_out_ends_the_session_and_every_other_one(
    app_runtime: tuple[TestClient, Runtime],
) -> None:
    client, runtime = app_runtime
    desk = signed_in(client, runtime, "lan.ttphcc", first_agency(runtime.catalog))
    this_one = client.cookies["hcc_staff"]
    other = Desk(TestClient(client.app, follow_redirects=False))  # the same officer elsewhere
    assert other.login("lan.ttphcc", PASSWORD).status_code == 303  # type: ignore[attr-defined]
    other_one = other.client.cookies["hcc_staff"]
    assert desk.post("/admin/logout").headers["location"] == "/admin/login"  # type: ignore[attr-defined]
    for cookie in (this_one, other_one):  # a copied cookie opens nothing any more
        stale = TestClient(client.app, follow_redirects=False, cookies={"hcc_staff": cookie})
        assert stale.get("/admin").headers["location"] == "/admin/login"
    # An officer who has not chosen their password yet may still leave.
    one_time = new_account(runtime, "minh.ttphcc", first_agency(runtime.catalog))
    client.cookies.clear()
    first = Desk(client)
    assert first.login("minh.ttphcc", one_time).status_code == 303  # type: ignore[attr-defined]
    first.get("/admin/password")
    cookie = client.cookies["hcc_staff"]
    assert first.post("/admin/logout").headers["location"] == "/admin/login"  # type: ignore[attr-defined]
    stale = TestClient(client.app, follow_redirects=False, cookies={"hcc_staff": cookie})
    assert stale.get("/admin/password").headers["location"] == "/admin/login"


def test_forms_without_the_session_token_or_from_another_site_change_nothing(
    app_runtime: tuple[TestClient, Runtime],
) -> None:
    client, runtime = app_runtime
    agency = first_agency(runtime.catalog)
    desk = signed_in(client, runtime, "lan.ttphcc", agency)
    _, code = citizen_dossier(
        runtime.engine, runtime.catalog, runtime.calendar, at=datetime.now(UTC)
    )
    url = f"/admin/dossiers/{code}/act"
    assert client.post(url, data={"action": "accept"}).status_code == 403
    assert client.post(url, data={"action": "accept", "csrf": "forged"}).status_code == 403
    cross = desk.post(url, {"action": "accept"}, headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403  # type: ignore[attr-defined]
    assert [d.status for d in rows(runtime, Dossier)] == ["submitted"]
    assert desk.post(url, {"action": "accept"}).status_code == 303  # type: ignore[attr-defined]
    assert [d.status for d in rows(runtime, Dossier)] == ["accepted"]
    # The login form has its own token too.
    client.cookies.clear()
    assert (
        client.post(
            "/admin/login", data={"username": "lan.ttphcc", "password": PASSWORD}
        ).status_code
        == 403
    )


def test_another_agencys_dossier_is_not_found_whatever_the_url(
    app_runtime: tuple[TestClient, Runtime],
) -> None:
    client, runtime = app_runtime
    _, code = citizen_dossier(
        runtime.engine, runtime.catalog, runtime.calendar, at=datetime.now(UTC)
    )
    stranger = signed_in(client, runtime, "binh.phuong2", other_agency(runtime.catalog))
    for url in (
        f"/admin/dossiers/{code}",
        f"/admin/dossiers/{code}/forms/05",
        f"/admin/dossiers/{code}/forms/05.png",
        f"/admin/dossiers/{code}/files/1",
    ):
        assert client.get(url).status_code == 404, url
    assert stranger.post(f"/admin/dossiers/{code}/act", {"action": "accept"}).status_code == 404  # type: ignore[attr-defined]
    assert stranger.post(f"/admin/dossiers/{code}/reply", {"text": "hi"}).status_code == 404  # type: ignore[attr-defined]
    assert code not in client.get("/admin?queue=all").text
    assert [d.status for d in rows(runtime, Dossier)] == ["submitted"]
    assert rows(runtime, OutboxMessage) == []  # no notice either


def test_each_desk_action_goes_through_the_state_machine_and_queues_a_notice(
    app_runtime: tuple[TestClient, Runtime],
) -> None:
    client, runtime = app_runtime
    catalog = runtime.catalog
    desk = signed_in(client, runtime, "lan.ttphcc", first_agency(catalog))
    dossier_id, code = citizen_dossier(
        runtime.engine, catalog, runtime.calendar, at=datetime.now(UTC)
    )
    page = desk.get(f"/admin/dossiers/{code}")
    assert "Nguyễn Văn An" in page.text and "+84912345678" in page.text  # type: ignore[attr-defined]

    procedure = catalog.procedure_by_slug("ho-kinh-doanh")
    first, second = procedure.components[0].code, procedure.components[1].code
    empty = desk.post(f"/admin/dossiers/{code}/act", {"action": "request_supplement"})
    assert empty.status_code == 409  # type: ignore[attr-defined]
    asked = desk.post(
        f"/admin/dossiers/{code}/act",
        {
            "action": "request_supplement",
            f"missing_{first}": "1",
            f"reason_{first}": "Ảnh bị mờ",
            f"missing_{second}": "1",
            f"reason_{second}": "Thiếu trang 2",
            f"reason_{procedure.components[2].code}": "",
        },
    )
    assert asked.status_code == 303  # type: ignore[attr-defined]
    form02 = desk.get(f"/admin/dossiers/{code}/forms/02")
    assert "Ảnh bị mờ" in form02.text and "Thiếu trang 2" in form02.text  # type: ignore[attr-defined]

    from core.dossier import Actor

    act(
        runtime.engine,
        catalog,
        runtime.calendar,
        dossier_id,
        Action.RESUBMIT,
        datetime.now(UTC),
        actor=Actor.CITIZEN,
    )
    desk.get(f"/admin/dossiers/{code}")
    assert desk.post(f"/admin/dossiers/{code}/act", {"action": "accept"}).status_code == 303  # type: ignore[attr-defined]
    desk.get(f"/admin/dossiers/{code}")
    reply = desk.post(
        f"/admin/dossiers/{code}/reply", {"text": "Mời anh mang bản chính khi nhận kết quả."}
    )
    assert reply.status_code == 303  # type: ignore[attr-defined]
    for action in ("forward", "result_ready", "return_result"):
        desk.get(f"/admin/dossiers/{code}")
        assert desk.post(f"/admin/dossiers/{code}/act", {"action": action}).status_code == 303, (
            action
        )  # type: ignore[attr-defined]

    # (Telegram is not configured in this app: each notice also gets its SMS fallback row.)
    templates = [m.template for m in rows(runtime, OutboxMessage) if m.channel == "telegram"]
    assert templates == [
        "notice.supplement_requested",
        "notice.accepted",
        "notice.reply",
        "notice.forwarded",
        "notice.result_ready",
        "notice.returned",
        "notice.rating_request",
    ]
    [officer] = rows(runtime, StaffUser)
    desk_events = [e for e in rows(runtime, StatusEvent) if e.actor_kind == "desk_officer"]
    assert {e.staff_user_id for e in desk_events} == {officer.id}
    assert [m.text for m in rows(runtime, ThreadMessage)] == [
        "Mời anh mang bản chính khi nhận kết quả."
    ]
    # Form 05, the control sheet, lists every step with the officer's name.
    sheet = desk.get(f"/admin/dossiers/{code}/forms/05").text  # type: ignore[attr-defined]
    assert sheet.count("Lan.Ttphcc") >= 5


def test_form_01_prints_with_a_qr_code_of_the_lookup_page(
    app_runtime: tuple[TestClient, Runtime],
) -> None:
    client, runtime = app_runtime
    desk = signed_in(client, runtime, "lan.ttphcc", first_agency(runtime.catalog))
    _, code = citizen_dossier(
        runtime.engine, runtime.catalog, runtime.calendar, at=datetime.now(UTC)
    )
    assert client.get(f"/admin/dossiers/{code}/forms/01").status_code == 404  # not accepted yet
    desk.get(f"/admin/dossiers/{code}")
    desk.post(f"/admin/dossiers/{code}/act", {"action": "accept"})
    page = client.get(f"/admin/dossiers/{code}/forms/01")
    assert "GIẤY TIẾP NHẬN HỒ SƠ VÀ HẸN TRẢ KẾT QUẢ" in page.text and "Nguyễn Văn An" in page.text
    image = client.get(f"/admin/dossiers/{code}/forms/01.png")
    assert image.headers["content-type"] == "image/png"
    decoded = [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(image.content)))]
    assert decoded == [f"https://hcc.example.vn/lookup/{code}"]


def test_a_refused_extension_says_why_and_changes_nothing(
    app_runtime: tuple[TestClient, Runtime],
) -> None:
    client, runtime = app_runtime
    desk = signed_in(client, runtime, "lan.ttphcc", first_agency(runtime.catalog))
    dossier_id, code = citizen_dossier(
        runtime.engine, runtime.catalog, runtime.calendar, at=datetime.now(UTC)
    )
    act(
        runtime.engine,
        runtime.catalog,
        runtime.calendar,
        dossier_id,
        Action.ACCEPT,
        datetime.now(UTC),
    )
    [accepted] = rows(runtime, Dossier)
    desk.get(f"/admin/dossiers/{code}")
    response = desk.post(
        f"/admin/dossiers/{code}/act", {"action": "extend", "new_date": "2020-01-01", "reason": "x"}
    )
    assert response.status_code == 409
    why = render("errors.extension_date_invalid", "vi", due=accepted.appointment_date)
    assert why in response.text  # type: ignore[attr-defined]
    [after] = rows(runtime, Dossier)
    assert (after.extended, after.appointment_date) == (False, accepted.appointment_date)


def test_transfer_keeps_the_code_and_moves_the_dossier_between_desks(
    app_runtime: tuple[TestClient, Runtime],
) -> None:
    client, runtime = app_runtime
    catalog = runtime.catalog
    _, code = citizen_dossier(runtime.engine, catalog, runtime.calendar, at=datetime.now(UTC))
    desk = signed_in(client, runtime, "lan.ttphcc", first_agency(catalog))
    desk.get(f"/admin/dossiers/{code}")
    moved = desk.post(
        f"/admin/dossiers/{code}/transfer",
        {"agency": other_agency(catalog), "reason": "Sai địa bàn"},
    )
    assert moved.status_code == 303  # type: ignore[attr-defined]
    assert client.get(f"/admin/dossiers/{code}").status_code == 404
    signed_in(client, runtime, "binh.phuong2", other_agency(catalog))
    assert code in client.get("/admin?queue=new").text
    [dossier] = rows(runtime, Dossier)
    assert dossier.code == code and dossier.agency_code == other_agency(catalog)
    assert [m.template for m in rows(runtime, OutboxMessage) if m.channel == "telegram"] == [
        "notice.transferred"
    ]


def test_inbox_queues_search_and_pagination(app_runtime: tuple[TestClient, Runtime]) -> None:
    client, runtime = app_runtime
    catalog, calendar = runtime.catalog, runtime.calendar
    now = datetime.now(UTC)
    codes = []
    for i in range(27):
        _, code = citizen_dossier(
            runtime.engine,
            catalog,
            calendar,
            external_id=str(900 + i),
            phone=f"+8491234{i:04d}",
            at=now - timedelta(minutes=i),
        )
        codes.append(code)
    accepted_id, accepted_code = citizen_dossier(runtime.engine, catalog, calendar, at=now)
    act(runtime.engine, catalog, calendar, accepted_id, Action.ACCEPT, now)
    signed_in(client, runtime, "lan.ttphcc", first_agency(catalog))
    page = client.get("/admin").text
    assert re.search(r'data-queue="new">\s*Mới nộp<span class="count">27<', page)
    assert re.search(
        r'data-queue="in_progress">\s*Đã tiếp nhận / đang giải quyết<span class="count">1<', page
    )
    assert codes[0] in page and codes[25] not in page  # newest first, 25 a page
    assert codes[25] in client.get("/admin?queue=new&page=2").text
    found = client.get("/admin", params={"queue": "all", "q": "0912340003"}).text
    assert codes[3] in found and codes[4] not in found
    assert (
        accepted_code
        in client.get("/admin", params={"queue": "all", "q": accepted_code.lower()}).text
    )
    assert client.get("/admin/stamp").json()["stamp"]


def test_accounts_are_managed_within_the_agency(app_runtime: tuple[TestClient, Runtime]) -> None:
    client, runtime = app_runtime
    catalog = runtime.catalog
    signed_in(client, runtime, "lan.ttphcc", first_agency(catalog))
    assert client.get("/admin/staff").status_code == 403  # an officer does not manage accounts
    admin = signed_in(client, runtime, "hoa.ttphcc", first_agency(catalog), Role.AGENCY_ADMIN)
    admin.get("/admin/staff")
    made = admin.post(
        "/admin/staff",
        {
            "username": "minh.ttphcc",
            "full_name": "Lê Minh",
            "role": "desk_officer",
            "agency": first_agency(catalog),
        },
    )
    assert "Mật khẩu dùng một lần của minh.ttphcc" in made.text  # type: ignore[attr-defined]
    bad = admin.post("/admin/staff", {"username": "Minh", "full_name": "x", "role": "desk_officer"})
    assert "tên.đơnvị" in bad.text  # type: ignore[attr-defined]
    foreign = admin.post(
        "/admin/staff",
        {
            "username": "an.khac",
            "full_name": "x",
            "role": "desk_officer",
            "agency": other_agency(catalog),
        },
    )
    assert foreign.status_code == 403  # type: ignore[attr-defined]
    boss = admin.post(
        "/admin/staff", {"username": "an.khac", "full_name": "x", "role": "system_admin"}
    )
    assert boss.status_code == 403  # type: ignore[attr-defined]
    names = {u.username for u in rows(runtime, StaffUser)}
    assert names == {"lan.ttphcc", "hoa.ttphcc", "minh.ttphcc"}


def _hash_of(runtime: Runtime, username: str) -> str:
    return next(u.password_hash for u in rows(runtime, StaffUser) if u.username == username)


def test_a_one_time_password_is_shown_only_to_who_holds_the_accounts_permissions(
    app_runtime: tuple[TestClient, Runtime],
) -> None:
    """A system admin (no personal data) cannot get an officer's one-time password — by a reset
    or a new account — nor an agency admin a peer admin's: they would sign in as them."""
    client, runtime = app_runtime
    agency = first_agency(runtime.catalog)
    new_account(runtime, "lan.ttphcc", agency)
    new_account(runtime, "hoa.ttphcc", agency, Role.AGENCY_ADMIN)
    lan_id = next(u.id for u in rows(runtime, StaffUser) if u.username == "lan.ttphcc")
    hoa_id = next(u.id for u in rows(runtime, StaffUser) if u.username == "hoa.ttphcc")
    root = signed_in(client, runtime, "root.sotttt", runtime.catalog.province.code,
                     Role.SYSTEM_ADMIN)  # fmt: skip
    page = root.get("/admin/staff")
    assert f"/admin/staff/{lan_id}/reset" not in page.text  # type: ignore[attr-defined]
    before = _hash_of(runtime, "lan.ttphcc")
    refused = root.post(f"/admin/staff/{lan_id}/reset")
    assert refused.status_code == 403 and "hcc staff reset" in refused.text  # type: ignore[attr-defined]
    assert "Mật khẩu dùng một lần" not in refused.text  # type: ignore[attr-defined]
    assert _hash_of(runtime, "lan.ttphcc") == before
    officer = {"username": "an.ttphcc", "full_name": "An", "role": "desk_officer", "agency": agency}
    made = root.post("/admin/staff", officer)
    assert made.status_code == 403 and "Mật khẩu dùng một lần" not in made.text  # type: ignore[attr-defined]
    assert "an.ttphcc" not in {u.username for u in rows(runtime, StaffUser)}
    peer = root.post("/admin/staff", {"username": "bao.sotttt", "full_name": "Bảo",
                                      "role": "system_admin",
                                      "agency": runtime.catalog.province.code})  # fmt: skip
    assert "Mật khẩu dùng một lần của bao.sotttt" in peer.text  # type: ignore[attr-defined]
    # The agency admin resets an officer (and sees it), not a peer admin.
    lan_session = Desk(TestClient(client.app, follow_redirects=False))
    lan_one_time = new_account(runtime, "minh.ttphcc", agency)
    assert lan_session.login("minh.ttphcc", lan_one_time).status_code == 303  # type: ignore[attr-defined]
    minh_id = next(u.id for u in rows(runtime, StaffUser) if u.username == "minh.ttphcc")
    admin = signed_in(client, runtime, "thu.ttphcc", agency, Role.AGENCY_ADMIN)
    admin.get("/admin/staff")
    before = _hash_of(runtime, "hoa.ttphcc")
    assert admin.post(f"/admin/staff/{hoa_id}/reset").status_code == 403  # type: ignore[attr-defined]
    assert _hash_of(runtime, "hoa.ttphcc") == before
    reset = admin.post(f"/admin/staff/{minh_id}/reset")
    assert "Mật khẩu dùng một lần của minh.ttphcc" in reset.text  # type: ignore[attr-defined]
    # The reset ends the officer's open session.
    assert lan_session.client.get("/admin/password").headers["location"] == "/admin/login"


def test_the_account_log_records_each_event_for_the_agencys_admins(
    app_runtime: tuple[TestClient, Runtime],
) -> None:
    client, runtime = app_runtime
    agency, other = first_agency(runtime.catalog), other_agency(runtime.catalog)
    admin = signed_in(client, runtime, "hoa.ttphcc", agency, Role.AGENCY_ADMIN)
    admin.get("/admin/staff")
    made = admin.post("/admin/staff", {"username": "minh.ttphcc", "full_name": "Minh",
                                       "role": "desk_officer", "agency": agency})  # fmt: skip
    one_time = re.search(r"minh\.ttphcc: (\S+)", made.text).group(1)  # type: ignore[attr-defined,union-attr]
    minh_id = next(u.id for u in rows(runtime, StaffUser) if u.username == "minh.ttphcc")
    guesser = Desk(TestClient(client.app, follow_redirects=False, client=("203.0.113.9", 4000)))
    for _ in range(int(ACCOUNT_THROTTLE.free) + 1):
        guesser.login("minh.ttphcc", "whatever")
    assert "Mở khóa" in admin.get("/admin/staff").text  # type: ignore[attr-defined]
    assert admin.post(f"/admin/staff/{minh_id}/unlock").status_code == 303  # type: ignore[attr-defined]
    assert guesser.login("minh.ttphcc", one_time).status_code == 303  # type: ignore[attr-defined]
    guesser.get("/admin/password")
    guesser.post("/admin/password", {"current": one_time, "new": PASSWORD, "repeat": PASSWORD})
    guesser.get("/admin")
    assert guesser.post("/admin/logout").status_code == 303  # type: ignore[attr-defined]
    admin.get("/admin/staff")
    role = admin.post(f"/admin/staff/{minh_id}/role", {"role": "agency_admin"})
    assert role.status_code == 303  # type: ignore[attr-defined]
    admin.get("/admin/staff")
    assert admin.post(f"/admin/staff/{minh_id}/reset").status_code == 403  # type: ignore[attr-defined]  # a peer now
    signed_in(client, runtime, "binh.phuong2", other, Role.AGENCY_ADMIN)  # another agency
    seen = [
        (e.kind, e.username, e.actor_username, e.address)
        for e in rows(runtime, AccountEvent)
        if e.username == "minh.ttphcc"
    ]
    assert seen == [
        ("created", "minh.ttphcc", "hoa.ttphcc", "testclient"),
        ("limited", "minh.ttphcc", None, "203.0.113.9"),
        ("unlocked", "minh.ttphcc", "hoa.ttphcc", "testclient"),
        ("signed_in", "minh.ttphcc", "minh.ttphcc", "203.0.113.9"),
        ("password_changed", "minh.ttphcc", "minh.ttphcc", "203.0.113.9"),
        ("signed_out", "minh.ttphcc", "minh.ttphcc", "203.0.113.9"),
        ("role_changed", "minh.ttphcc", "hoa.ttphcc", "testclient"),
    ]
    # The page: newest first, this agency only (binh.phuong2's sign-in is another agency's).
    client.cookies.clear()
    again = Desk(client)
    again.login("hoa.ttphcc", PASSWORD)
    page = again.get("/admin/staff/events").text  # type: ignore[attr-defined]
    kinds = re.findall(r'data-kind="([a-z_]+)"', page)
    assert kinds[:3] == ["signed_in", "role_changed", "signed_out"], kinds
    assert "binh.phuong2" not in page and "minh.ttphcc" in page
    root = signed_in(client, runtime, "root.sotttt", runtime.catalog.province.code,
                     Role.SYSTEM_ADMIN)  # fmt: skip
    everything = root.get("/admin/staff/events").text  # type: ignore[attr-defined]
    assert "binh.phuong2" in everything and "minh.ttphcc" in everything


def test_the_account_log_is_paginated(app_runtime: tuple[TestClient, Runtime]) -> None:
    client, runtime = app_runtime
    agency = first_agency(runtime.catalog)
    for number in range(30):
        new_account(runtime, f"cb{number:02d}.ttphcc", agency)
    admin = signed_in(client, runtime, "hoa.ttphcc", agency, Role.AGENCY_ADMIN)
    for number in range(20):  # each reset is one more line
        admin.get("/admin/staff")
        user_id = next(
            u.id for u in rows(runtime, StaffUser) if u.username == f"cb{number:02d}.ttphcc"
        )
        admin.post(f"/admin/staff/{user_id}/reset")
    first = admin.get("/admin/staff/events").text  # type: ignore[attr-defined]
    second = admin.get("/admin/staff/events?page=2").text  # type: ignore[attr-defined]
    total = 30 + 1 + 1 + 1 + 20  # created ×31, signed in, password changed, resets
    assert first.count('class="account-event"') == 50 and "?page=2" in first
    assert second.count('class="account-event"') == total - 50 and "?page=3" not in second
    assert "cb19.ttphcc" in first.split('class="account-event"')[1]  # the newest: the last reset
    assert admin.get("/admin/staff/events?page=abc").status_code == 200  # type: ignore[attr-defined]


def test_the_system_admin_sees_no_personal_data(app_runtime: tuple[TestClient, Runtime]) -> None:
    client, runtime = app_runtime
    _, code = citizen_dossier(
        runtime.engine, runtime.catalog, runtime.calendar, at=datetime.now(UTC)
    )
    signed_in(client, runtime, "root.sotttt", runtime.catalog.province.code, Role.SYSTEM_ADMIN)
    assert client.get(f"/admin/dossiers/{code}").status_code == 404
    assert client.get("/admin/staff").status_code == 200
    assert (
        client.get("/admin/reports", params={"agency": first_agency(runtime.catalog)}).status_code
        == 200
    )


def test_canned_replies_fill_their_placeholders(app_runtime: tuple[TestClient, Runtime]) -> None:
    client, runtime = app_runtime
    _, code = citizen_dossier(
        runtime.engine, runtime.catalog, runtime.calendar, at=datetime.now(UTC)
    )
    admin = signed_in(
        client, runtime, "hoa.ttphcc", first_agency(runtime.catalog), Role.AGENCY_ADMIN
    )
    admin.get("/admin/canned")
    wrong = admin.post("/admin/canned", {"title": "X", "text": "Chào {ten}"})
    assert wrong.status_code == 400  # type: ignore[attr-defined]
    admin.post(
        "/admin/canned",
        {"title": "Nhắc bản chính", "text": "Chào {name}, hồ sơ {code} cần bản chính."},
    )
    page = client.get(f"/admin/dossiers/{code}").text
    assert f"Chào Nguyễn Văn An, hồ sơ {code} cần bản chính." in page


@pytest.mark.parametrize(
    "text", ["Chào {}", "Hồ sơ {code:d}", "Mã {code:>5000000}", "{0}", "{name.__class__}"]
)
def test_a_canned_reply_with_a_format_spec_is_refused_at_save(
    app_runtime: tuple[TestClient, Runtime], text: str
) -> None:
    client, runtime = app_runtime
    admin = signed_in(
        client, runtime, "hoa.ttphcc", first_agency(runtime.catalog), Role.AGENCY_ADMIN
    )
    admin.get("/admin/canned")
    refused = admin.post("/admin/canned", {"title": "X", "text": text})
    assert refused.status_code == 400  # type: ignore[attr-defined]
    assert render("admin.error.canned_placeholder", "vi") in refused.text  # type: ignore[attr-defined]
    assert rows(runtime, CannedReply) == []


def test_a_bad_stored_canned_reply_breaks_no_dossier_page(
    app_runtime: tuple[TestClient, Runtime],
) -> None:
    """Replies stored before the check at save (or by hand): each dossier page still opens,
    small, the stray braces shown as typed and the known placeholders filled."""
    client, runtime = app_runtime
    _, code = citizen_dossier(
        runtime.engine, runtime.catalog, runtime.calendar, at=datetime.now(UTC)
    )
    agency = first_agency(runtime.catalog)
    with session_scope(runtime.engine) as session:
        for number, text in enumerate(
            ["Chào {}", "Hồ sơ {code:d}", "Mã {code:>5000000}", "{name} {unknown} {code}"]
        ):
            session.add(CannedReply(agency_code=agency, title=f"Mẫu {number}", text=text))
    signed_in(client, runtime, "lan.ttphcc", agency)
    page = client.get(f"/admin/dossiers/{code}")
    assert page.status_code == 200
    assert len(page.content) < 200_000
    assert "Mã {code:&gt;5000000}" in page.text
    assert f"Nguyễn Văn An {{unknown}} {code}" in page.text


def test_undelivered_messages_can_be_retried_from_the_panel(settings: Settings) -> None:
    # The web process's own dispatcher runs at start, then only when woken (by the retry).
    app = create_app(settings.model_copy(update={"dispatch_interval_seconds": 3600}))
    runtime: Runtime = app.state.runtime
    dossier_id, code = citizen_dossier(
        runtime.engine, runtime.catalog, runtime.calendar, channel="zalo", phone=None,
        at=datetime.now(UTC),
    )  # fmt: skip
    act(runtime.engine, runtime.catalog, runtime.calendar, dossier_id, Action.ACCEPT,
        datetime.now(UTC))  # fmt: skip
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:

        def settled() -> bool:  # the dispatcher's pass at start: no Zalo sender, no phone
            return rows(runtime, OutboxMessage)[0].state == "dead"

        wait_until(settled, "the dispatcher did not settle the message")
        with session_scope(runtime.engine) as session:
            message = session.execute(select(OutboxMessage)).scalar_one()
            message.state, message.last_error = "dead", "earlier failure"
        desk = signed_in(client, runtime, "lan.ttphcc", first_agency(runtime.catalog))
        page = desk.get("/admin/deliveries")
        assert code in page.text and "earlier failure" in page.text  # type: ignore[attr-defined]
        signed_out = TestClient(app, base_url="https://testserver", follow_redirects=False).post(
            f"/admin/deliveries/{message.id}/retry"
        )
        assert signed_out.headers["location"] == "/admin/login"
        assert desk.post(f"/admin/deliveries/{message.id}/retry").status_code == 303  # type: ignore[attr-defined]
        # Retried at once: Zalo is not configured and there is no phone, so it fails again,
        # with the reason shown.
        deadline = time.time() + 10
        while time.time() < deadline:
            [retried] = rows(runtime, OutboxMessage)
            if retried.last_error != "earlier failure":
                break
            time.sleep(0.05)
        assert retried.state == "dead" and retried.attempts == 1
        assert "zalo: channel not configured" in (retried.last_error or "")
        other = signed_in(client, runtime, "binh.phuong2", other_agency(runtime.catalog))
        other.get("/admin/deliveries")
        assert other.post(f"/admin/deliveries/{message.id}/retry").status_code == 404  # type: ignore[attr-defined]
    runtime.engine.dispose()


def test_reports_count_on_time_and_late_and_export_csv(
    app_runtime: tuple[TestClient, Runtime],
) -> None:
    client, runtime = app_runtime
    catalog, calendar, engine = runtime.catalog, runtime.calendar, runtime.engine
    monday = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
    on_time, _ = citizen_dossier(engine, catalog, calendar, at=monday)
    late, _ = citizen_dossier(engine, catalog, calendar, external_id="556", at=monday)
    refused, _ = citizen_dossier(engine, catalog, calendar, external_id="557", at=monday)
    for dossier_id in (on_time, late):
        act(engine, catalog, calendar, dossier_id, Action.ACCEPT, monday)  # due Thursday 10 Dec
    act(engine, catalog, calendar, on_time, Action.RESULT_READY, monday + timedelta(days=2))
    act(engine, catalog, calendar, late, Action.RESULT_READY, monday + timedelta(days=7))
    act(engine, catalog, calendar, refused, Action.REFUSE, monday, reason="Sai thủ tục")
    signed_in(client, runtime, "lan.ttphcc", first_agency(catalog))
    params = {"since": "2026-12-01", "until": "2026-12-31"}
    page = client.get("/admin/reports", params=params).text
    total = re.search(r"<tr><th>Tổng</th>((?:\s*<td>[^<]*</td>)+)", page)
    assert total is not None
    cells = re.findall(r"<td>([^<]*)</td>", total.group(1))
    assert cells[:6] == [
        "3",
        "2",
        "1",
        "2",
        "1",
        "1",
    ]  # received, accepted, refused, finished, on time, late
    assert cells[6] == "3.5"  # (2 + 5) working days / 2
    assert 'id="on-time-chart"' in page
    csv = client.get("/admin/reports", params={**params, "format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert "Đã nhận" in csv.text and "Đăng ký thành lập hộ kinh doanh" in csv.text


@pytest.mark.parametrize(
    "since, until, format, message",
    [
        ("2025-01-01", "2026-01-02", "html", ("admin.reports.period_too_long", 366)),  # 367 days
        ("2020-01-01", "2026-12-31", "csv", ("admin.reports.period_too_long", 1826)),
        ("0100-01-01", "2026-12-31", "csv", ("admin.error.bad_date", 0)),  # the probe's 52 MB
        ("2026-01-01", "9999-12-31", "html", ("admin.error.bad_date", 0)),
    ],
)
def test_a_report_period_is_capped_with_a_vietnamese_message(
    app_runtime: tuple[TestClient, Runtime],
    since: str,
    until: str,
    format: str,
    message: tuple[str, int],
) -> None:
    client, runtime = app_runtime
    signed_in(client, runtime, "lan.ttphcc", first_agency(runtime.catalog))
    answer = client.get("/admin/reports", params={"since": since, "until": until,
                                                  "format": format})  # fmt: skip
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("text/html")
    key, days = message
    assert (render(key, "vi", days=days) if days else render(key, "vi")) in answer.text
    assert 'action="/admin/reports"' in answer.text  # the form, to choose again


def test_a_year_of_report_and_five_years_of_csv_are_served(
    app_runtime: tuple[TestClient, Runtime],
) -> None:
    client, runtime = app_runtime
    signed_in(client, runtime, "lan.ttphcc", first_agency(runtime.catalog))
    year = {"since": "2026-01-01", "until": "2026-12-31"}
    assert client.get("/admin/reports", params=year).status_code == 200
    five = {"since": "2022-01-01", "until": "2026-12-31", "format": "csv"}
    assert client.get("/admin/reports", params=five).status_code == 200
    reversed_period = {"since": "2026-12-31", "until": "2026-01-01"}
    answer = client.get("/admin/reports", params=reversed_period)
    assert answer.status_code == 400
    assert render("admin.reports.period_reversed", "vi") in answer.text


@pytest.mark.parametrize(
    "path",
    [
        "/admin?page=99999999999999999999",
        "/admin?page=0&since=0001-01-01&until=9999-12-31",
        "/admin?since=9999-12-31",
        "/admin/reports?since=0001-01-01&until=0001-01-31",
        "/admin/reports?since=9999-12-01&until=9999-12-31",
        "/admin/reports?until=9999-12-31",
        "/admin/deliveries?done=xyz",
        "/admin/dossiers/{code}?done=xyz",
        "/admin/dossiers/{code}?done=__class__",
        "/admin/dossiers/{code}/files/99999999999999999999",
        "/admin/dossiers/{code}/files/-1",
        "/chat/api/updates?after=99999999999999999999",
    ],
)
def test_crafted_panel_parameters_never_give_a_500(
    app_runtime: tuple[TestClient, Runtime], path: str
) -> None:
    client, runtime = app_runtime
    _, code = citizen_dossier(
        runtime.engine, runtime.catalog, runtime.calendar, at=datetime.now(UTC)
    )
    signed_in(client, runtime, "lan.ttphcc", first_agency(runtime.catalog))
    client.get("/chat")
    answer = client.get(path.format(code=code), headers={"Accept": "text/html"})
    assert answer.status_code in (200, 400, 404, 422), answer.text[:500]
    if answer.status_code != 200 and not path.startswith("/chat/api/"):
        assert 'href="/admin"' in answer.text  # the Vietnamese page with a way back


def test_a_dossier_extended_to_9999_is_refused_and_says_why(
    app_runtime: tuple[TestClient, Runtime],
) -> None:
    client, runtime = app_runtime
    dossier_id, code = citizen_dossier(
        runtime.engine, runtime.catalog, runtime.calendar, at=datetime.now(UTC)
    )
    act(runtime.engine, runtime.catalog, runtime.calendar, dossier_id, Action.ACCEPT,
        datetime.now(UTC))  # fmt: skip
    desk = signed_in(client, runtime, "lan.ttphcc", first_agency(runtime.catalog))
    desk.get(f"/admin/dossiers/{code}")
    form = {"action": "extend", "reason": "Chờ xác minh", "new_date": "9999-12-31"}
    answer = desk.post(f"/admin/dossiers/{code}/act", form)
    assert answer.status_code == 409  # type: ignore[attr-defined]
    assert "tối đa một năm" in answer.text  # type: ignore[attr-defined]
    with Session(runtime.engine) as session:
        dossier = session.get(Dossier, dossier_id)
        assert dossier is not None and dossier.status == "accepted"
        assert dossier.appointment_date is not None and dossier.appointment_date.year < 9999


def test_hcc_staff_create_prints_a_one_time_password(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from webhook.cli import main
    from webhook.settings import get_settings

    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("LOAD_DEMO_DATA", "false")
    get_settings.cache_clear()
    try:
        assert (
            main(
                [
                    "staff",
                    "create",
                    "lan.ttphcc",
                    "--name",
                    "Trần Thị Lan",
                    "--agency",
                    "000.00.10.H53",
                ]
            )
            == 0
        )
        assert main(["staff", "create", "Lan", "--name", "x", "--agency", "000.00.10.H53"]) == 1
    finally:
        get_settings.cache_clear()
    out = capsys.readouterr()
    assert "Mật khẩu dùng một lần của lan.ttphcc:" in out.out
    assert "tên.đơnvị" in out.err


def test_the_thread_shows_the_officers_reply_and_the_citizens_answer(
    app_runtime: tuple[TestClient, Runtime],
) -> None:
    from core.conversation import Incoming
    from storage.intake import converse

    client, runtime = app_runtime
    _, code = citizen_dossier(
        runtime.engine, runtime.catalog, runtime.calendar, at=datetime.now(UTC)
    )
    desk = signed_in(client, runtime, "lan.ttphcc", first_agency(runtime.catalog))
    desk.get(f"/admin/dossiers/{code}")
    desk.post(
        f"/admin/dossiers/{code}/reply", {"text": "Anh bổ sung bản sao hợp đồng thuê nhà nhé."}
    )
    for incoming in (Incoming(button=f"reply:{code}"), Incoming(text="Dạ, tối nay tôi gửi ạ.")):
        with session_scope(runtime.engine) as session:
            converse(
                session,
                channel="telegram",
                external_id="555",
                incoming=incoming,
                catalog=runtime.catalog,
                calendar=runtime.calendar,
                rules=NO_ONESTOP,
                media=runtime.media,
                public_base_url="https://hcc.example.vn",
            )
    page = client.get(f"/admin/dossiers/{code}").text
    officer_at = page.index("Anh bổ sung bản sao hợp đồng thuê nhà nhé.")
    citizen_at = page.index("Dạ, tối nay tôi gửi ạ.")
    assert officer_at < citizen_at and 'class="thread-in"' in page
