"""Status pushes to Zalo followers through the outbox: real outbox rows (a desk officer accepts
a dossier submitted on Zalo) delivered by `bots.delivery.deliver` to the fake Zalo OpenAPI and
the fake SMS gateway on 127.0.0.1. Time is injected: the 7-day window is the citizen's last
interaction (`ChannelIdentity.last_seen_at`) against the dispatcher's `now`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select, update
from sqlmodel import Session, col

from bots.channels import make_senders, zalo_sender
from bots.delivery import MemoryThrottle
from bots.zalo import ZaloSender, check_templates_file, tracking_id_for
from core.dossier import Action
from core.zalo_templates import CHAT_WINDOW
from storage.db import session_scope
from storage.models import ChannelIdentity, OutboxMessage
from storage.outbox import mark_reachable, mark_unreachable, record_receipt
from storage.zalo import save_tokens
from tests.dossiers import MONDAY, act, citizen_dossier
from tests.fakes.sms_gateway import FakeSmsGateway
from tests.fakes.zalo import (
    ZALO_APP_ID,
    ZALO_APP_SECRET,
    ZALO_OA_ID,
    ZALO_OA_SECRET,
    ZALO_USER_ID,
    FakeZalo,
    Template,
)
from tests.servers import live_server
from tests.webhook.test_admin import first_agency, signed_in
from webhook.app import create_app
from webhook.jobs import Dispatcher
from webhook.runtime import Runtime, build_runtime
from webhook.settings import Settings

SMS_KEY = "sms-gateway-key"
PHONE = "+84912345678"
TEMPLATE_ID = "24680"
ACCEPTED_TEMPLATE = f"""
[templates."notice.accepted"]
template_id = "{TEMPLATE_ID}"
[templates."notice.accepted".params]
ma_ho_so = "code"
ngay_hen_tra = "appointment_date"
"""


@dataclass
class Wire:
    zalo: FakeZalo
    sms: FakeSmsGateway
    settings: Settings


@pytest.fixture
def wire(database_url: str, tmp_path: Path) -> Iterator[Wire]:
    """The fake Zalo (one approved template) and SMS gateway, and settings pointing at them;
    `notice.accepted` is mapped to the template unless a test rewrites the file."""
    zalo, sms = FakeZalo(), FakeSmsGateway(SMS_KEY)
    zalo.templates[TEMPLATE_ID] = Template(["ma_ho_so", "ngay_hen_tra"], required={"ma_ho_so"})
    templates = tmp_path / "templates.toml"
    templates.write_text(ACCEPTED_TEMPLATE, encoding="utf-8")
    with live_server(zalo.app) as zalo_base, live_server(sms.app) as sms_base:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=database_url,
            media_dir=tmp_path / "media",
            public_base_url="https://hcc.example.vn",
            sms_webhook_secret="sms-test-secret",  # type: ignore[arg-type]
            load_demo_data=False,
            sms_gateway_url=f"{sms_base}/api/sms",
            sms_gateway_auth_header=SecretStr(f"Authorization: Bearer {SMS_KEY}"),
            sms_gateway_body='{"to": "{phone}", "message": "{text}"}',
            zalo_app_id=ZALO_APP_ID,
            zalo_app_secret=SecretStr(ZALO_APP_SECRET),
            zalo_oa_id=ZALO_OA_ID,
            zalo_oa_secret_key=SecretStr(ZALO_OA_SECRET),
            zalo_api_base=zalo_base,
            zalo_oauth_base=zalo_base,
            zalo_business_api_base=zalo_base,
            zalo_templates=templates,
        )
        yield Wire(zalo, sms, settings)


@pytest.fixture
def runtime(wire: Wire) -> Iterator[Runtime]:
    runtime = build_runtime(wire.settings)
    access, refresh = wire.zalo.issue_pair()
    with session_scope(runtime.engine) as session:
        save_tokens(
            session,
            oa_id=ZALO_OA_ID,
            access_token=access,
            refresh_token=refresh,
            expires_at=MONDAY + timedelta(days=365),  # valid at every injected time
            now=MONDAY,
        )
    yield runtime
    runtime.engine.dispose()


def dispatcher(runtime: Runtime) -> Dispatcher:
    return Dispatcher(runtime, make_senders(runtime, MemoryThrottle()))


def accepted_on_zalo(runtime: Runtime, phone: str | None = PHONE) -> str:
    """A follower who last wrote on Monday submits; the desk accepts at once. The code."""
    engine, catalog, calendar = runtime.engine, runtime.catalog, runtime.calendar
    dossier_id, code = citizen_dossier(
        engine, catalog, calendar, channel="zalo", external_id=ZALO_USER_ID, phone=phone
    )
    with session_scope(engine) as session:
        session.execute(
            update(ChannelIdentity)
            .where(col(ChannelIdentity.external_id) == ZALO_USER_ID)
            .values(last_seen_at=MONDAY)
        )
    act(engine, catalog, calendar, dossier_id, Action.ACCEPT, MONDAY)
    return code


def outbox(runtime: Runtime) -> list[OutboxMessage]:
    with Session(runtime.engine) as session:
        query = select(OutboxMessage).order_by(col(OutboxMessage.id))
        return list(session.execute(query).scalars())


def states(runtime: Runtime) -> list[tuple[str, str]]:
    return [(row.channel, row.state) for row in outbox(runtime)]


def test_inside_the_window_the_push_is_a_consultation_message(runtime: Runtime, wire: Wire) -> None:
    code = accepted_on_zalo(runtime)
    [outcome] = dispatcher(runtime).dispatch(MONDAY + CHAT_WINDOW - timedelta(hours=1))
    assert outcome.state == "sent"
    [text] = wire.zalo.texts()
    assert code in text and "10/12/2026" in text
    assert wire.zalo.messages[0]["recipient"] == {"user_id": ZALO_USER_ID}
    assert wire.zalo.template_messages == [] and wire.sms.sent == []
    [row] = outbox(runtime)
    assert row.sent_ref and len(row.sent_ref) == 32  # Zalo's message id, for its receipts


def test_eight_days_later_the_push_goes_straight_to_the_template_message_once(
    runtime: Runtime, wire: Wire
) -> None:
    code = accepted_on_zalo(runtime)
    later = MONDAY + timedelta(days=8)
    runner = dispatcher(runtime)
    assert [o.state for o in runner.dispatch(later)] == ["rerouted"]
    assert wire.zalo.calls == []  # no consultation message tried first (it would be -230)
    assert [o.state for o in runner.dispatch(later)] == ["sent"]
    assert runner.dispatch(later + timedelta(minutes=5)) == []  # nothing more to send
    original, template_row = outbox(runtime)
    assert (original.state, template_row.channel) == ("rerouted", "zalo_template")
    assert "outside the 7-day window" in (original.last_error or "")
    [sent] = wire.zalo.template_messages
    assert sent == {
        "phone": "84912345678",  # E.164 without the plus
        "template_id": TEMPLATE_ID,
        "template_data": {"ma_ho_so": code, "ngay_hen_tra": "10/12/2026"},
        "tracking_id": tracking_id_for(template_row.idempotency_key),
    }
    assert sent["tracking_id"] == template_row.idempotency_key  # the key is the tracking id
    assert wire.zalo.messages == [] and wire.sms.sent == []


def test_eight_days_later_without_a_template_the_push_goes_by_sms(
    runtime: Runtime, wire: Wire
) -> None:
    wire.settings.zalo_templates.write_text("[templates]\n", encoding="utf-8")
    code = accepted_on_zalo(runtime)
    runner = dispatcher(runtime)
    later = MONDAY + timedelta(days=8)
    assert [o.state for o in runner.dispatch(later)] == ["rerouted"]
    assert [o.state for o in runner.dispatch(later)] == ["sent"]
    assert states(runtime) == [("zalo", "rerouted"), ("sms", "sent")]
    assert {body["to"] for body in wire.sms.sent} == {PHONE}
    assert code in " ".join(body["message"] for body in wire.sms.sent)
    assert wire.zalo.calls == []


@pytest.mark.parametrize("code", [-213, -230])
def test_not_a_follower_or_no_interaction_goes_by_template(
    runtime: Runtime, wire: Wire, code: int
) -> None:
    accepted_on_zalo(runtime)
    wire.zalo.queue_errors("/v3.0/oa/message/cs", code)
    runner = dispatcher(runtime)
    soon = MONDAY + timedelta(hours=1)  # inside the window by our clock: Zalo refuses anyway
    [outcome] = runner.dispatch(soon)
    assert outcome.state == "rerouted" and str(code) in outcome.detail
    assert [o.state for o in runner.dispatch(soon)] == ["sent"]
    assert states(runtime) == [("zalo", "rerouted"), ("zalo_template", "sent")]
    assert len(wire.zalo.template_messages) == 1 and wire.zalo.messages == []


def test_a_template_unmapped_after_the_reroute_goes_by_sms_after_all(
    runtime: Runtime, wire: Wire
) -> None:
    accepted_on_zalo(runtime)
    later = MONDAY + timedelta(days=8)
    assert [o.state for o in dispatcher(runtime).dispatch(later)] == ["rerouted"]
    only_refusals = ACCEPTED_TEMPLATE.replace("notice.accepted", "notice.refused")
    wire.settings.zalo_templates.write_text(only_refusals, encoding="utf-8")
    restarted = Dispatcher(runtime, make_senders(runtime, MemoryThrottle()))  # reads the file
    assert [o.state for o in restarted.dispatch(later)] == ["rerouted"]
    assert [o.state for o in restarted.dispatch(later)] == ["sent"]
    assert [channel for channel, _ in states(runtime)] == ["zalo", "zalo_template", "sms"]
    assert wire.zalo.template_messages == [] and len(wire.sms.sent) >= 1


def test_a_template_zalo_no_longer_accepts_falls_back_to_sms(runtime: Runtime, wire: Wire) -> None:
    code = accepted_on_zalo(runtime)
    wire.zalo.templates[TEMPLATE_ID].status = "DISABLE"  # answered -131
    runner = dispatcher(runtime)
    later = MONDAY + timedelta(days=8)
    assert [o.state for o in runner.dispatch(later)] == ["rerouted"]
    assert [o.state for o in runner.dispatch(later)] == ["rerouted"]
    assert "-131" in (outbox(runtime)[1].last_error or "")
    assert [o.state for o in runner.dispatch(later)] == ["sent"]
    assert states(runtime) == [("zalo", "rerouted"), ("zalo_template", "rerouted"), ("sms", "sent")]
    assert code in " ".join(body["message"] for body in wire.sms.sent)


def test_after_an_unfollow_pushes_go_by_template_until_a_follow(
    runtime: Runtime, wire: Wire
) -> None:
    accepted_on_zalo(runtime)
    soon = MONDAY + timedelta(hours=1)
    with session_scope(runtime.engine) as session:
        assert mark_unreachable(session, "zalo", ZALO_USER_ID, MONDAY)
        assert not mark_unreachable(session, "zalo", "someone-else", MONDAY)
    runner = dispatcher(runtime)
    assert [o.state for o in runner.dispatch(soon)] == ["rerouted"]
    assert "unfollowed" in (outbox(runtime)[0].last_error or "")
    assert [o.state for o in runner.dispatch(soon)] == ["sent"]
    assert wire.zalo.messages == [] and len(wire.zalo.template_messages) == 1
    # Followed again: the next push is a chat message again.
    with session_scope(runtime.engine) as session:
        assert mark_reachable(session, "zalo", ZALO_USER_ID)
        identity = session.execute(select(ChannelIdentity)).scalar_one()
        assert identity.unreachable_at is None
    engine, catalog, calendar = runtime.engine, runtime.catalog, runtime.calendar
    dossier_id = outbox(runtime)[0].dossier_id or 0
    act(engine, catalog, calendar, dossier_id, Action.RESULT_READY, soon)
    assert "sent" in [o.state for o in runner.dispatch(soon)]
    assert len(wire.zalo.messages) == 1


def test_a_rate_limited_push_is_retried_later_and_delivered_once(
    runtime: Runtime, wire: Wire
) -> None:
    accepted_on_zalo(runtime)
    wire.zalo.queue_errors("/v3.0/oa/message/cs", -32)
    runner = dispatcher(runtime)
    soon = MONDAY + timedelta(hours=1)
    [outcome] = runner.dispatch(soon)
    assert outcome.state == "pending" and "-32" in outcome.detail
    assert runner.dispatch(soon) == []  # not before the backoff
    assert [o.state for o in runner.dispatch(soon + timedelta(minutes=1))] == ["sent"]
    assert runner.dispatch(soon + timedelta(minutes=2)) == []
    assert len(wire.zalo.messages) == 1
    [row] = outbox(runtime)
    assert row.state == "sent" and row.attempts == 2


def test_pushes_faster_than_the_apps_rate_wait_without_spending_attempts(
    runtime: Runtime, wire: Wire
) -> None:
    throttle = MemoryThrottle()
    senders = make_senders(runtime, throttle)
    zalo = senders["zalo"]
    assert isinstance(zalo, ZaloSender) and zalo.throttle is throttle  # one throttle for all
    zalo.per_minute = 1  # the OA's ~4,000 a minute, made small
    runner = Dispatcher(runtime, senders)
    accepted_on_zalo(runtime)
    citizen_dossier(
        runtime.engine, runtime.catalog, runtime.calendar, channel="zalo", external_id="other"
    )
    with session_scope(runtime.engine) as session:
        session.execute(update(ChannelIdentity).values(last_seen_at=MONDAY))
    dossier_id = outbox(runtime)[0].dossier_id or 0
    act(runtime.engine, runtime.catalog, runtime.calendar, dossier_id, Action.RESULT_READY, MONDAY)
    outcomes = runner.dispatch(MONDAY + timedelta(hours=1))
    assert sorted(o.state for o in outcomes) == ["pending", "sent"]
    assert len(wire.zalo.messages) == 1
    waiting = [row for row in outbox(runtime) if row.state == "pending"]
    assert [row.attempts for row in waiting] == [0]  # the rate is not the message's fault


def test_bad_parameters_are_a_dead_letter_with_zalos_reason_in_the_panel(wire: Wire) -> None:
    app = create_app(wire.settings.model_copy(update={"dispatch_interval_seconds": 3600}))
    runtime: Runtime = app.state.runtime
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
        access, refresh = wire.zalo.issue_pair()
        with session_scope(runtime.engine) as session:
            save_tokens(
                session,
                oa_id=ZALO_OA_ID,
                access_token=access,
                refresh_token=refresh,
                expires_at=MONDAY + timedelta(days=365),
                now=MONDAY,
            )
        code = accepted_on_zalo(runtime)
        wire.zalo.queue_errors("/v3.0/oa/message/cs", -201)
        [outcome] = dispatcher(runtime).dispatch(MONDAY + timedelta(hours=1))
        assert outcome.state == "dead"
        [row] = outbox(runtime)
        assert row.last_error == "zalo -201: Parameters are invalid"
        desk = signed_in(client, runtime, "lan.ttphcc", first_agency(runtime.catalog))
        page = desk.get("/admin/deliveries").text  # type: ignore[attr-defined]
        assert code in page and "zalo -201: Parameters are invalid" in page
    runtime.engine.dispose()


def test_a_receipt_marks_the_template_message_by_its_tracking_id(
    runtime: Runtime, wire: Wire
) -> None:
    accepted_on_zalo(runtime)
    runner = dispatcher(runtime)
    later = MONDAY + timedelta(days=8)
    runner.dispatch(later)
    runner.dispatch(later)
    [sent] = wire.zalo.template_messages
    received = later + timedelta(minutes=1)
    with session_scope(runtime.engine) as session:
        assert record_receipt(session, at=received, tracking_id="notice:unknown") == 0
        assert record_receipt(session, at=received, tracking_id=sent["tracking_id"]) == 1
        # A later receipt (seen) does not move the first one.
        record_receipt(session, at=later + timedelta(hours=1), tracking_id=sent["tracking_id"])
    original, template_row = outbox(runtime)
    assert template_row.receipt_at == received and original.receipt_at is None


def test_a_receipt_marks_a_consultation_message_by_its_message_id(
    runtime: Runtime, wire: Wire
) -> None:
    accepted_on_zalo(runtime)
    dispatcher(runtime).dispatch(MONDAY + timedelta(hours=1))
    [row] = outbox(runtime)
    seen = MONDAY + timedelta(hours=2)
    with session_scope(runtime.engine) as session:
        assert record_receipt(session, at=seen, msg_ids=["other", row.sent_ref or ""]) == 1
    assert outbox(runtime)[0].receipt_at == seen


def test_the_templates_file_is_checked_against_what_zalo_declares(
    runtime: Runtime, wire: Wire, tmp_path: Path
) -> None:
    with httpx.Client(timeout=10) as client:
        sender = zalo_sender(runtime, client, MemoryThrottle())
        assert sender is not None
        problems = [check_templates_file(sender, wire.settings.zalo_templates)]
        wire.zalo.templates[TEMPLATE_ID] = Template(["ma_ho_so"], required={"ma_ho_so"})
        problems.append(check_templates_file(sender, wire.settings.zalo_templates))
        broken = tmp_path / "broken.toml"
        broken.write_text('[templates."notice.nonsense"]\ntemplate_id = "1"\n', encoding="utf-8")
        problems.append(check_templates_file(sender, broken))
    assert problems[0] == []
    assert problems[1] == [
        f"notice.accepted (template {TEMPLATE_ID}): parameter 'ngay_hen_tra' is not declared "
        "by the template"
    ]
    [problem] = problems[2]
    assert "'notice.nonsense' is not a notice a template can carry" in problem
