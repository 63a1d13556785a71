"""What the desk sees of the one-stop connector: a dossier the system refused is its own queue
in the inbox, with the system's own message, and can be sent again."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlmodel import Session

from storage.models import OutboxMessage
from tests.servers import wait_until
from tests.webhook.test_admin import first_agency, signed_in
from tests.webhook.test_onestop import accept_in_panel, connected, dossier_with_a_photo
from webhook.settings import Settings

REFUSAL = "Mã thủ tục hành chính không tồn tại trên hệ thống"


def test_a_refused_forward_is_listed_in_the_inbox_with_the_systems_message(
    settings: Settings,
) -> None:
    with connected(settings) as c:
        _, code, _ = dossier_with_a_photo(c.runtime)
        c.fake.fail_next(1, "error", REFUSAL)
        accept_in_panel(c, code)

        def dead() -> bool:
            with Session(c.runtime.engine) as session:
                rows = session.execute(
                    select(OutboxMessage).where(OutboxMessage.channel == "onestop")  # type: ignore[arg-type]
                ).scalars().all()  # fmt: skip
                return [r.state for r in rows] == ["dead"]

        wait_until(dead, "the refused create did not become a dead letter")
        assert c.fake.creates == []  # refused, and not retried in a loop
        with httpx.Client(base_url=c.base, follow_redirects=False) as client:
            desk = signed_in(client, c.runtime, "mai.ttphcc", first_agency(c.runtime.catalog))  # type: ignore[arg-type]
            inbox = desk.get("/admin").text  # type: ignore[attr-defined]
            card = inbox.split('id="forward-failures"')[1].split("</div>")[0]
            assert code in card and REFUSAL in card
            deliveries = desk.get("/admin/deliveries").text  # type: ignore[attr-defined]
            assert code in deliveries and REFUSAL in deliveries
            with Session(c.runtime.engine) as session:
                message = session.execute(
                    select(OutboxMessage).where(OutboxMessage.channel == "onestop")  # type: ignore[arg-type]
                ).scalar_one()  # fmt: skip
            retried = desk.post(f"/admin/deliveries/{message.id}/retry")
            assert retried.status_code == 303  # type: ignore[attr-defined]
            wait_until(lambda: c.fake.creates == [code], "the retried create did not arrive")
            assert 'id="forward-failures"' not in desk.get("/admin").text  # type: ignore[attr-defined]
