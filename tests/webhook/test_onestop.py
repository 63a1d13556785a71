"""The one-stop connector end to end, against the fake one-stop system on a loopback port and
our app served by uvicorn (so the fake really fetches file links and calls back): a dossier
accepted in the panel is created there once with the national fields, its official code comes
back, its status callbacks move it through the state machine and push the citizen."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlmodel import Session

from core.onestop import file_link
from storage.db import session_scope
from storage.models import DocumentFile, Dossier, OutboxMessage, StatusEvent
from tests.dossiers import citizen_dossier
from tests.fakes.onestop import CLIENT_ID, CLIENT_SECRET, FakeOnestop
from tests.images import good_jpeg
from tests.servers import LiveServer, free_port, wait_until
from tests.webhook.test_admin import first_agency, signed_in
from webhook.app import create_app
from webhook.runtime import Runtime
from webhook.settings import Settings

CALLBACK_SECRET = "onestop-callback-secret-1"


@dataclass
class Connected:
    fake: FakeOnestop
    base: str  # our app, served
    runtime: Runtime

    def callback(self, body: dict[str, Any], timestamp: int | None = None) -> httpx.Response:
        return self.fake.callback(f"{self.base}/webhook/onestop", CALLBACK_SECRET, body, timestamp)

    def dossier(self, dossier_id: int) -> Dossier:
        with Session(self.runtime.engine) as session:
            found = session.get(Dossier, dossier_id)
            assert found is not None
            return found

    def citizen_notices(self, dossier_id: int) -> list[str]:
        with Session(self.runtime.engine) as session:
            rows = session.execute(
                select(OutboxMessage)
                .where(OutboxMessage.dossier_id == dossier_id)  # type: ignore[arg-type]
                .order_by(OutboxMessage.id)  # type: ignore[arg-type]
            ).scalars()
            return [r.template for r in rows if r.channel == "telegram"]  # not the SMS copies


def onestop_settings(settings: Settings, fake: FakeOnestop, public_base_url: str) -> Settings:
    return settings.model_copy(
        update={
            "onestop_base_url": fake.base_url,
            "onestop_token_url": fake.token_url,
            "onestop_client_id": CLIENT_ID,
            "onestop_client_secret": SecretStr(CLIENT_SECRET),
            "onestop_callback_secret": SecretStr(CALLBACK_SECRET),
            "public_base_url": public_base_url,
            "dispatch_interval_seconds": 0.2,
        }
    )


@contextmanager
def connected(settings: Settings, **fake_options: Any) -> Iterator[Connected]:
    with FakeOnestop(**fake_options) as fake:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        app = create_app(onestop_settings(settings, fake, base))
        server = LiveServer(app)
        server.port, server.url = port, base
        server.start()
        try:
            yield Connected(fake, base, app.state.runtime)
        finally:
            server.stop()


def dossier_with_a_photo(runtime: Runtime) -> tuple[int, str, bytes]:
    dossier_id, code = citizen_dossier(runtime.engine, runtime.catalog, runtime.calendar)
    photo = good_jpeg()
    stored = runtime.media.put(photo, "image/jpeg")
    procedure = runtime.catalog.procedure_by_slug("ho-kinh-doanh")
    with session_scope(runtime.engine) as session:
        session.add(DocumentFile(dossier_id=dossier_id, component_code=procedure.components[0].code,
                                 media_key=stored.key, sha256=stored.sha256, size=stored.size,
                                 content_type="image/jpeg"))  # fmt: skip
    return dossier_id, code, photo


def accept_in_panel(connected: Connected, code: str, username: str = "lan.ttphcc") -> None:
    runtime = connected.runtime
    with httpx.Client(base_url=connected.base, follow_redirects=False) as client:
        desk = signed_in(client, runtime, username, first_agency(runtime.catalog))  # type: ignore[arg-type]
        desk.get(f"/admin/dossiers/{code}")
        answer = desk.post(f"/admin/dossiers/{code}/act", {"action": "accept"})
        assert answer.status_code == 303, answer.text  # type: ignore[attr-defined]


def test_an_accepted_dossier_is_created_once_with_national_fields_and_fetchable_files(
    settings: Settings,
) -> None:
    with connected(settings, assign_official_codes=True) as c:
        dossier_id, code, photo = dossier_with_a_photo(c.runtime)
        accept_in_panel(c, code)
        wait_until(lambda: c.fake.creates == [code], "the dossier was not created")
        (create,) = c.fake.calls("DongBoHoSoMC")
        assert create.query["isUpdating"] == "False"
        (item,) = create.body["data"]
        procedure = c.runtime.catalog.procedure_by_slug("ho-kinh-doanh")
        assert item["MaHoSo"] == code and item["MaTTHC"] == procedure.code
        assert item["KenhThucHien"] == "2" and item["LoaiDoiTuong"] == "1"
        assert item["ChuHoSo"] == "Nguyễn Văn An" and item["SoDienThoai"] == "+84912345678"
        assert item["TrangThaiHoSo"] in ("2", 2)
        stored = c.dossier(dossier_id)
        assert stored.appointment_date is not None
        assert item["NgayHenTra"].startswith(stored.appointment_date.strftime("%Y%m%d"))
        assert len(item["NgayHenTra"]) == 14  # yyyyMMddHHmmss
        assert "Email" not in item and "DinhDanhCHS" not in item  # only what is needed
        (attached,) = item["TaiLieuNop"]
        assert attached["MaThanhPhanHoSo"] == procedure.components[0].national_code
        url = attached["DuongDanTaiTepTin"]
        assert url.startswith(c.base + "/onestop/files/") and "signature=" in url
        fetched = c.fake.fetch(url)
        assert fetched.status_code == 200 and fetched.content == photo
        # A link tampered with, or signed right but expired, opens nothing.
        assert c.fake.fetch(url.replace("signature=", "signature=0")).status_code == 403
        key = c.runtime.settings.secret_key.get_secret_value()
        expired = file_link(c.base, key, attached["TepDinhKemId"], int(time.time()) - 1)
        assert c.fake.fetch(expired).status_code == 403
        assert httpx.get(f"{c.base}/onestop/files/{attached['TepDinhKemId']}").status_code == 403

        # The system gave its own code: kept, told to the citizen once, and a lookup by it works.
        official = c.fake.official[code]
        wait_until(lambda: c.dossier(dossier_id).official_code == official, "no official code")
        assert c.citizen_notices(dossier_id).count("notice.official_code") == 1
        page = httpx.get(f"{c.base}/lookup", params={"code": official}, follow_redirects=True)
        assert page.status_code == 200 and code in page.text
        assert f'id="official-code">{official}<' in page.text
        time.sleep(0.5)
        assert c.fake.creates == [code]  # once


def test_status_callbacks_move_the_dossier_and_push_the_citizen(settings: Settings) -> None:
    with connected(settings, assign_official_codes=True) as c:
        dossier_id, code, _ = dossier_with_a_photo(c.runtime)
        accept_in_panel(c, code)
        official = c.fake.official.get(code)
        wait_until(lambda: c.dossier(dossier_id).official_code is not None, "no official code")
        official = c.dossier(dossier_id).official_code
        for status, expected in ((4, "processing"), (9, "result_ready"), (10, "returned")):
            answer = c.callback({"MaHoSo": official, "TrangThaiHoSo": status,
                                 "NoiDungXuLy": "Đã xử lý", "NguoiXuLy": "Trần Văn B"})  # fmt: skip
            assert answer.status_code == 200, answer.text
            assert answer.json()["ok"] is True
            assert c.dossier(dossier_id).status == expected
        notices = c.citizen_notices(dossier_id)
        assert [n for n in notices if n != "notice.official_code"] == [
            "notice.accepted",
            "notice.forwarded",
            "notice.result_ready",
            "notice.returned",
            "notice.rating_request",
        ]
        with Session(c.runtime.engine) as session:
            actors = session.execute(
                select(StatusEvent.actor_kind).where(StatusEvent.dossier_id == dossier_id)  # type: ignore[call-overload]
            ).scalars().all()  # fmt: skip
        assert actors[-3:] == ["onestop", "onestop", "onestop"]
        # A status the machine does not allow now: 409 with the reason, nothing changed.
        late = c.callback({"MaHoSo": code, "TrangThaiHoSo": 5, "NoiDungXuLy": "Thiếu giấy"})
        assert late.status_code == 409 and late.json()["message"]
        assert c.dossier(dossier_id).status == "returned"
        unknown = c.callback({"MaHoSo": "000.00.10.H53-261207-9999", "TrangThaiHoSo": 4})
        assert unknown.status_code == 404


def test_forged_stale_and_replayed_callbacks_change_nothing(settings: Settings) -> None:
    with connected(settings) as c:
        dossier_id, code, _ = dossier_with_a_photo(c.runtime)
        accept_in_panel(c, code)
        body = {"MaHoSo": code, "TrangThaiHoSo": 4, "NoiDungXuLy": "Chuyển phòng chuyên môn"}
        forged = c.fake.callback(f"{c.base}/webhook/onestop", "not-the-secret", body)
        assert forged.status_code == 401
        stale = c.callback(body, timestamp=int(time.time()) - 3600)
        assert stale.status_code == 401
        future = c.callback(body, timestamp=int(time.time()) + 3600)
        assert future.status_code == 401
        assert c.dossier(dossier_id).status == "accepted"
        moment = int(time.time())
        first = c.callback(body, timestamp=moment)
        assert first.status_code == 200 and first.json()["applied"] == ["forward"]
        again = c.callback(body, timestamp=moment)  # the same message delivered twice
        assert again.status_code == 200 and again.json().get("repeated") is True
        # Sent anew (another timestamp), the same status changes nothing either.
        repeat = c.callback(body, timestamp=moment + 1)
        assert repeat.status_code == 200 and repeat.json()["applied"] == []
        with Session(c.runtime.engine) as session:
            forwards = session.execute(
                select(StatusEvent).where(
                    StatusEvent.dossier_id == dossier_id,  # type: ignore[arg-type]
                    StatusEvent.action == "forward",  # type: ignore[arg-type]
                )
            ).scalars().all()  # fmt: skip
        assert len(forwards) == 1
        bad = httpx.post(f"{c.base}/webhook/onestop", content=b"x" * 300_000)
        assert bad.status_code == 413


@pytest.fixture(autouse=True)
def _quiet_fake_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING")
