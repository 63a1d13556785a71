"""The one-stop connector when things go wrong and in its other modes, against the fake one-stop
system on a loopback port and our app served by uvicorn: the system down or refusing, a worker
killed mid-send, a dossier's changes kept in order, the supplement loop, pull mode through
`hcc onestop sync|check`, and a system that names its fields its own way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlmodel import Session

from core.catalog import Catalog
from core.dossier import Action, Actor, Command
from storage.db import session_scope
from storage.dossiers import apply_command
from storage.models import OutboxMessage, StatusEvent
from tests.bots import test_worker
from tests.bots.test_worker import RedisServer
from tests.dossiers import citizen_dossier
from tests.fakes.onestop import CLIENT_ID, CLIENT_SECRET, FakeOnestop
from tests.servers import wait_until
from tests.webhook.test_admin import first_agency, signed_in
from tests.webhook.test_onestop import (
    CALLBACK_SECRET,
    Connected,
    accept_in_panel,
    connected,
    dossier_with_a_photo,
)
from webhook.cli import main
from webhook.runtime import Runtime, build_runtime
from webhook.settings import REPO_ROOT, Settings, get_settings

redis_server = test_worker.redis_server  # a Redis server of the test's own
RENAMED = REPO_ROOT / "tests" / "data" / "onestop" / "renamed.toml"


def onestop_rows(runtime: Runtime) -> list[OutboxMessage]:
    with Session(runtime.engine) as session:
        return list(
            session.execute(
                select(OutboxMessage)
                .where(OutboxMessage.channel == "onestop")  # type: ignore[arg-type]
                .order_by(OutboxMessage.id)  # type: ignore[arg-type]
            ).scalars()
        )


def hurry(runtime: Runtime) -> None:
    """Time passes: every one-stop change waiting out its backoff is due now."""
    with session_scope(runtime.engine) as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.channel == "onestop", OutboxMessage.state == "pending")  # type: ignore[arg-type]
            .values(next_attempt_at=datetime.now(UTC))
        )


def settle(c: Connected, condition: Any, message: str, timeout: float = 30) -> None:
    """Wait for `condition`, letting retries come due meanwhile."""
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError(message)
        hurry(c.runtime)
        time.sleep(0.2)


def failed_once(c: Connected) -> bool:
    return any(r.state == "pending" and r.attempts >= 1 for r in onestop_rows(c.runtime))


def test_a_create_waits_while_the_system_is_down_and_goes_out_once(settings: Settings) -> None:
    with connected(settings) as c:
        _, code, _ = dossier_with_a_photo(c.runtime)
        with c.fake.down():
            accept_in_panel(c, code)
            wait_until(lambda: failed_once(c), "no attempt failed while the system was down")
            assert c.fake.creates == []
        c.fake.fail_next(1, "503")  # back, but overloaded once more
        settle(c, lambda: c.fake.creates == [code], "not created after the system came back")
        time.sleep(0.5)
        assert c.fake.creates == [code]
        [row] = onestop_rows(c.runtime)
        assert row.state == "sent" and row.attempts == 3  # refused, 503, delivered
        assert [r.query["isUpdating"] for r in c.fake.calls("DongBoHoSoMC")] == ["False", "False"]


def test_a_refusal_is_a_dead_letter_with_the_systems_message_on_the_deliveries_page(
    settings: Settings,
) -> None:
    with connected(settings) as c:
        _, code, _ = dossier_with_a_photo(c.runtime)
        c.fake.fail_next(1, "error", "Mã thủ tục hành chính không tồn tại")
        accept_in_panel(c, code)
        wait_until(lambda: [r.state for r in onestop_rows(c.runtime)] == ["dead"], "not dead")
        [row] = onestop_rows(c.runtime)
        assert "Mã thủ tục hành chính không tồn tại" in (row.last_error or "")
        assert row.attempts == 1 and c.fake.creates == []
        with httpx.Client(base_url=c.base, follow_redirects=False) as client:
            agency = first_agency(c.runtime.catalog)
            desk = signed_in(client, c.runtime, "hoa.ttphcc", agency)  # type: ignore[arg-type]
            page = desk.get("/admin/deliveries")
            assert page.status_code == 200  # type: ignore[attr-defined]
            assert "Mã thủ tục hành chính không tồn tại" in page.text  # type: ignore[attr-defined]


def test_an_update_goes_out_only_after_its_create(settings: Settings) -> None:
    """The create fails and waits out its backoff; the desk forwards meanwhile, so the update is
    due first. It waits for the create (the system would refuse an update of a dossier it does
    not know yet), which fails twice more before it goes out."""
    with connected(settings) as c:
        dossier_id, code, _ = dossier_with_a_photo(c.runtime)
        c.fake.fail_next(1, "503")
        accept_in_panel(c, code)
        wait_until(lambda: failed_once(c), "the first create did not fail")
        with session_scope(c.runtime.engine) as session:  # the desk forwards it at once
            apply_command(session, dossier_id,
                          Command(Action.FORWARD, Actor.DESK_OFFICER, datetime.now(UTC)),
                          catalog=c.runtime.catalog, calendar=c.runtime.calendar,
                          rules=c.runtime.flow_rules)  # fmt: skip
        wait_until(lambda: onestop_rows(c.runtime)[-1].last_error is not None,
                   "the update was not tried while the create waited")  # fmt: skip
        c.fake.fail_next(2, "503")
        settle(c, lambda: bool(c.fake.progress), "the update never went out")
        time.sleep(0.5)
        answered = [r for r in c.fake.requests if r.service][3:]  # after the three 503s
        assert [(r.service, r.query.get("isUpdating")) for r in answered] == [
            ("DongBoHoSoMC", "False"),
            ("DongBoHoSoMC", "True"),
            ("CapNhatTienDoHoSoMC", None),
        ]
        assert c.fake.creates == [code] and c.fake.updates == [code]
        [step] = c.fake.progress
        assert step["MaHoSo"] == code
        assert {r.state for r in onestop_rows(c.runtime)} == {"sent"}


def test_the_supplement_loop_goes_both_ways(settings: Settings) -> None:
    with connected(settings) as c:
        dossier_id, code, _ = dossier_with_a_photo(c.runtime)
        accept_in_panel(c, code)
        wait_until(lambda: c.fake.creates == [code], "not created")
        procedure = c.runtime.catalog.procedure_by_slug("ho-kinh-doanh")
        component = procedure.components[0]
        answer = c.callback({
            "MaHoSo": code, "TrangThaiHoSo": 5, "NoiDungXuLy": "Bổ sung giấy tờ",
            "NguoiXuLy": "Trần Văn B",
            "DanhSachGiayToBoSung": [{"MaThanhPhanHoSo": component.national_code,
                                      "LyDo": "Ảnh chụp bị mờ"}],
        })  # fmt: skip
        assert answer.status_code == 200, answer.text
        assert c.dossier(dossier_id).status == "supplement_requested"
        with Session(c.runtime.engine) as session:
            request = session.execute(
                select(StatusEvent).where(
                    StatusEvent.dossier_id == dossier_id,  # type: ignore[arg-type]
                    StatusEvent.action == "request_supplement",  # type: ignore[arg-type]
                )
            ).scalar_one()
        assert request.actor_kind == "onestop"
        [missing] = request.details["missing"]  # the national code read as ours
        assert (missing["code"], missing["reason"]) == (component.code, "Ảnh chụp bị mờ")
        assert "notice.supplement_requested" in c.citizen_notices(dossier_id)
        assert c.fake.updates == []  # the system's own change is not echoed back

        with session_scope(c.runtime.engine) as session:  # the citizen sends the paper again
            apply_command(session, dossier_id,
                          Command(Action.RESUBMIT, Actor.CITIZEN, datetime.now(UTC)),
                          catalog=c.runtime.catalog, calendar=c.runtime.calendar,
                          rules=c.runtime.flow_rules)  # fmt: skip
        wait_until(lambda: c.fake.updates == [code], "the resubmission was not sent")
        update_call = c.fake.calls("DongBoHoSoMC")[-1]
        assert update_call.query["isUpdating"] == "True"
        [item] = update_call.body["data"]
        [round_] = item["DanhSachHoSoBoSung"]
        assert round_["HoSoBoSungId"] == str(request.id)
        assert "Ảnh chụp bị mờ" in round_["NoiDungBoSung"]  # the audit's sentence of the request
        assert round_["DanhSachGiayToBoSung"] == [
            {"MaThanhPhanHoSo": component.national_code, "NoiDung": "Ảnh chụp bị mờ"}
        ]
        assert len(round_["NgayTiepNhanBoSung"]) == 14  # when the citizen answered
        if request.details.get("old_appointment_date"):
            old = request.details["old_appointment_date"].replace("-", "")
            assert round_["NgayHenTraTruoc"].startswith(old)


def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, c: Connected) -> None:
    """`hcc` as an operator runs it: settings from the environment only."""
    settings = c.runtime.settings
    monkeypatch.chdir(tmp_path)  # no .env read
    for name, value in {
        "DATABASE_URL": settings.database_url,
        "MEDIA_DIR": str(settings.media_dir),
        "LOAD_DEMO_DATA": "false",
        "PUBLIC_BASE_URL": c.base,
        "ONESTOP_BASE_URL": c.fake.base_url,
        "ONESTOP_TOKEN_URL": c.fake.token_url,
        "ONESTOP_CLIENT_ID": CLIENT_ID,
        "ONESTOP_CLIENT_SECRET": CLIENT_SECRET,
        "ONESTOP_CALLBACK_SECRET": CALLBACK_SECRET,
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


def test_pull_mode_applies_a_change_made_only_on_the_system_once(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with connected(settings) as c:
        dossier_id, code, _ = dossier_with_a_photo(c.runtime)
        accept_in_panel(c, code)
        wait_until(lambda: c.fake.creates == [code], "not created")
        wait_until(lambda: {r.state for r in onestop_rows(c.runtime)} == {"sent"}, "not settled")
        cli_env(monkeypatch, tmp_path, c)
        try:
            assert main(["onestop", "check"]) == 0  # in step
            capsys.readouterr()
            c.fake.set_status(code, 4)
            assert main(["onestop", "check"]) == 1
            out = capsys.readouterr().out
            assert f"{code}\t2\t4" in out
            assert main(["onestop", "sync"]) == 0
            assert code in capsys.readouterr().out
            assert c.dossier(dossier_id).status == "processing"
            c.fake.set_status(code, 9)
            assert main(["onestop", "sync"]) == 0
            assert c.dossier(dossier_id).status == "result_ready"
            capsys.readouterr()
            assert main(["onestop", "sync"]) == 0  # a second sync changes nothing
            assert code not in capsys.readouterr().out
            assert main(["onestop", "check"]) == 0
        finally:
            get_settings.cache_clear()
        with Session(c.runtime.engine) as session:
            by_system = session.execute(
                select(StatusEvent.action).where(  # type: ignore[call-overload]
                    StatusEvent.dossier_id == dossier_id, StatusEvent.actor_kind == "onestop"
                )
            ).scalars().all()  # fmt: skip
        assert by_system == ["forward", "result_ready"]
        assert c.citizen_notices(dossier_id).count("notice.result_ready") == 1
        assert c.fake.updates == []  # what the system said is not sent back to it


def test_a_system_with_its_own_field_names_needs_no_code_change(
    settings: Settings, catalog: Catalog, tmp_path: Path
) -> None:
    """One agency on a system with camelCase names and statuses by name (renamed.toml), sharing
    the callback secret with every agency on the national names."""
    procedure = catalog.procedure_by_slug("ho-kinh-doanh")
    agency = catalog.receiving_agencies(procedure)[0].code
    agencies = tmp_path / "agencies.toml"
    agencies.write_text(f'[agencies."{agency}"]\nmapping = "{RENAMED}"\n')
    renamed = settings.model_copy(update={"onestop_agencies": agencies})
    with connected(renamed, code_field="dossierNo", status_field="dossierStatus") as c:
        dossier_id, code, _ = dossier_with_a_photo(c.runtime)
        accept_in_panel(c, code)
        wait_until(lambda: c.fake.creates == [code], "not created under the renamed fields")
        [create] = c.fake.calls("DongBoHoSoMC")
        [item] = create.body["data"]
        assert item["dossierNo"] == code and item["serviceCode"] == procedure.code
        assert item["dossierStatus"] == "new" and item["applicantName"] == "Nguyễn Văn An"
        assert "MaHoSo" not in item and "TrangThaiHoSo" not in item
        assert item["attachments"][0]["downloadUrl"].startswith(c.base + "/onestop/files/")
        answer = c.callback({"dossierNo": code, "dossierStatus": "processing",
                             "actionNote": "Chuyển phòng chuyên môn"})  # fmt: skip
        assert answer.status_code == 200, answer.text
        assert c.dossier(dossier_id).status == "processing"
        # The national names are not this agency's: nothing of it is read that way.
        national = c.callback({"MaHoSo": code, "TrangThaiHoSo": 9})
        assert national.status_code == 404 and c.dossier(dossier_id).status == "processing"


# ---------------------------------------------------------------------------- a worker killed


def test_a_worker_killed_mid_send_leaves_one_dossier_on_the_system(
    postgres_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    """The worker dies while its create is on the wire; the system carries it out anyway. The
    next worker sends it again (at least once): the same DongBoHoSoMC upsert of the same code,
    so the system still holds one dossier, and our outbox one row, sent."""
    with FakeOnestop(slow_seconds=3.0) as fake:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(tmp_path),
            "DATABASE_URL": postgres_url,
            "REDIS_URL": redis_server.url,
            "OUTBOX_LEASE_SECONDS": "2",
            "DISPATCH_INTERVAL_SECONDS": "0.2",
            "MEDIA_DIR": str(tmp_path / "media"),
            "LOAD_DEMO_DATA": "false",
            "PUBLIC_BASE_URL": "https://hcc.example.vn",
            "ONESTOP_BASE_URL": fake.base_url,
            "ONESTOP_TOKEN_URL": fake.token_url,
            "ONESTOP_CLIENT_ID": CLIENT_ID,
            "ONESTOP_CLIENT_SECRET": CLIENT_SECRET,
            "ONESTOP_TIMEOUT_SECONDS": "20",
        }
        settings = Settings(_env_file=None, **{k.lower(): v for k, v in env.items()  # type: ignore[call-arg, arg-type]
                                               if k not in ("PATH", "HOME")})  # fmt: skip
        runtime = build_runtime(settings)
        processes: list[subprocess.Popen[bytes]] = []

        def start() -> subprocess.Popen[bytes]:
            process = subprocess.Popen([sys.executable, "-m", "webhook.cli", "worker"],
                                       cwd=REPO_ROOT, env=env, start_new_session=True)  # fmt: skip
            processes.append(process)
            return process

        try:
            dossier_id, code = citizen_dossier(runtime.engine, runtime.catalog, runtime.calendar,
                                               at=datetime.now(UTC))  # fmt: skip
            fake.fail_next(1, "slow")
            with session_scope(runtime.engine) as session:
                apply_command(session, dossier_id,
                              Command(Action.ACCEPT, Actor.DESK_OFFICER, datetime.now(UTC)),
                              catalog=runtime.catalog, calendar=runtime.calendar,
                              rules=runtime.flow_rules)  # fmt: skip
            first = start()
            wait_until(lambda: bool(fake.calls("DongBoHoSoMC")), "the create never reached it")
            os.killpg(first.pid, signal.SIGKILL)  # while the system is still answering
            first.wait(10)
            wait_until(lambda: fake.creates == [code], "the system did not carry it out")
            start()
            wait_until(lambda: len(fake.creates) == 2, "the create was not sent again", 30)
            time.sleep(1)
            assert fake.creates == [code, code]  # at least once: the same upsert, twice
            assert list(fake.dossiers) == [code]  # one dossier on the system
            [row] = onestop_rows(runtime)
            assert row.state == "sent" and row.attempts == 2
        finally:
            for process in processes:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGTERM)
                    process.wait(10)
            runtime.engine.dispose()


@pytest.fixture(autouse=True)
def _quiet_fake_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING")
