"""GET /metrics: only with the operator's token, and figures read from the installation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import select

from storage.db import session_scope
from storage.models import OutboxMessage
from storage.outbox import add_message, mark_dead
from webhook.app import create_app
from webhook.settings import Settings

TOKEN = "metrics-token-1"


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_need_the_token_and_do_not_exist_without_one(settings: Settings) -> None:
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        assert client.get("/metrics").status_code == 404
    configured = settings.model_copy(update={"metrics_token": SecretStr(TOKEN)})
    with TestClient(create_app(configured), base_url="https://testserver") as client:
        assert client.get("/metrics").status_code == 401
        wrong = client.get("/metrics", headers={"Authorization": "Bearer guess"})
        assert wrong.status_code == 401


def test_outbox_depth_age_and_dead_letters_are_reported(settings: Settings) -> None:
    configured = settings.model_copy(update={"metrics_token": SecretStr(TOKEN)})
    app = create_app(configured.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    runtime = app.state.runtime
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    with session_scope(runtime.engine) as session:
        for n in range(3):
            add_message(session, key=f"k{n}", channel="telegram", recipient="1",
                        template="notice.reply", values={}, at=an_hour_ago)  # fmt: skip
        add_message(session, key="dead", channel="sms", recipient="+84912345678",
                    template="notice.reply", values={}, at=an_hour_ago)  # fmt: skip
    with session_scope(runtime.engine) as session:
        dead_id = session.execute(
            select(OutboxMessage.id).where(OutboxMessage.idempotency_key == "dead")  # type: ignore[call-overload]
        ).scalar_one()
        mark_dead(session, dead_id, "sms gateway 400")
    # REDIS_URL set: this process delivers nothing itself
    with TestClient(app, base_url="https://testserver") as client:
        samples = scrape(client)
    pending = ("hcc_outbox_messages", (("channel", "telegram"), ("state", "pending")))
    dead = ("hcc_outbox_messages", (("channel", "sms"), ("state", "dead")))
    assert samples[pending] == 3 and samples[dead] == 1
    age = samples[("hcc_outbox_oldest_age_seconds", pending[1])]
    assert 3500 < age < 3700
    assert samples[("hcc_media_store_up", ())] == 1
    assert samples[("hcc_replies_unsent", ())] == 0
