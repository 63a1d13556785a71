"""The staff bot's outbox sender: a desk alert (`core.flows.officer_alert`) to one linked
officer's Telegram chat, with the panel link and the quick-step buttons made for that officer.

Plain httpx through `TelegramSender` (the worker loads no bot framework); the message id is kept
as the row's `sent_ref`, so replying to an alert finds its dossier.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import httpx

from bots.delivery import TelegramSender, Throttle
from core.calendar import to_local
from core.messages import render
from core.notices import render_notice
from storage.outbox import Claimed

LANG = "vi"  # officers read the panel's language


def alert_text(template: str, values: dict[str, Any]) -> str:
    """The alert's (or staff reminder's) sentence, with the time in Vietnam; an alert adds the
    appointment when there is one (a reminder's sentence names its own dates)."""
    shown = {k: v for k, v in values.items() if k != "buttons"}
    shown.setdefault("procedure", "")
    if isinstance(shown.get("at"), str):
        shown["at"] = to_local(datetime.fromisoformat(shown["at"]))
    text = render_notice(template, shown, LANG)
    appointment = values.get("appointment_date")
    if template.startswith("alert.") and appointment:
        day = date.fromisoformat(appointment)
        text += "\n" + render("staffbot.appointment", LANG, date=day)
    return text


def alert_keyboard(values: dict[str, Any], panel_url: str) -> dict[str, Any]:
    """*Mở trong hệ thống* and one button per quick step; each step's data is only its key."""
    rows: list[list[dict[str, str]]] = [
        [{"text": render("staffbot.button.open", LANG), "url": panel_url}]
    ]
    steps = [
        {"text": render(f"staffbot.button.{action}", LANG), "callback_data": key}
        for action, key in (values.get("buttons") or {}).items()
    ]
    if steps:
        rows.append(steps)
    return {"inline_keyboard": rows}


class StaffSender(TelegramSender):
    """The staff bot's Bot API, with its own sending limits."""

    def __init__(
        self, client: httpx.Client, token: str, api_base: str, throttle: Throttle,
        public_base_url: str, **limits: float,
    ) -> None:  # fmt: skip
        super().__init__(client, token, api_base, throttle, name="telegram_staff", **limits)
        self.public_base_url = public_base_url.rstrip("/")

    def send_notice(self, message: Claimed) -> str | None:
        code = str(message.values.get("code", ""))
        page = f"/admin/dossiers/{code}" if code else "/admin?queue=feedback"  # feedback: no code
        params = {
            "chat_id": message.recipient,
            "text": alert_text(message.template, message.values),
            "reply_markup": alert_keyboard(message.values, f"{self.public_base_url}{page}"),
        }
        return self._call(message.recipient, "sendMessage", json_body=params)
