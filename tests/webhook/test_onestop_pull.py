"""Pull mode in the worker: every ONESTOP_SYNC_MINUTES the dispatcher's slow beat asks the
one-stop system for the status of forwarded, unfinished dossiers and applies what changed."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from bots.channels import make_senders
from bots.delivery import MemoryThrottle
from tests.servers import wait_until
from tests.webhook.test_onestop import accept_in_panel, connected, dossier_with_a_photo
from webhook.jobs import Dispatcher
from webhook.settings import Settings


def test_the_worker_pulls_statuses_at_its_interval(settings: Settings) -> None:
    with connected(settings) as c:
        dossier_id, code, _ = dossier_with_a_photo(c.runtime)
        accept_in_panel(c, code)
        wait_until(lambda: c.fake.creates == [code], "not created")
        every_5 = c.runtime.settings.model_copy(update={"onestop_sync_minutes": 5})
        runtime = replace(c.runtime, settings=every_5)
        dispatcher = Dispatcher(runtime, make_senders(runtime, MemoryThrottle()))
        c.fake.set_status(code, 4)
        now = datetime.now(UTC)
        dispatcher.tick(now)
        assert len(c.fake.calls("TraCuuHoSo")) == 1
        assert c.dossier(dossier_id).status == "processing"
        c.fake.set_status(code, 9)
        dispatcher.tick(now + timedelta(minutes=4))  # not yet: nothing asked
        assert len(c.fake.calls("TraCuuHoSo")) == 1
        assert c.dossier(dossier_id).status == "processing"
        dispatcher.tick(now + timedelta(minutes=5))
        assert len(c.fake.calls("TraCuuHoSo")) == 2
        assert c.dossier(dossier_id).status == "result_ready"
        off = replace(c.runtime, settings=settings.model_copy(update={"onestop_sync_minutes": 0}))
        Dispatcher(off, {}).tick(now + timedelta(hours=1))  # 0 = off
        assert len(c.fake.calls("TraCuuHoSo")) == 2
