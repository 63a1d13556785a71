"""Turn a `Notice` (message key + JSON-safe values, kept in the outbox) into the citizen text,
and into the `Reply` a chat channel sends, with the buttons that lead back into the dialogue."""

from __future__ import annotations

from datetime import date
from typing import Any

from core.messages import render
from core.replies import Button, Reply

RATING_REQUEST = "notice.rating_request"
DESK_REPLY = "notice.reply"
SUPPLEMENT_NOTICES = frozenset({"notice.supplement_requested", "remind.supplement_missing"})


def format_fee(fee_vnd: int, lang: str) -> str:
    if fee_vnd <= 0:
        return render("notice.fee_free", lang)
    return render("notice.fee_amount", lang, amount=f"{fee_vnd:,}".replace(",", "."))


def render_notice(key: str, values: dict[str, Any], lang: str = "vi") -> str:
    """The push message in the citizen's language; values are what `core.dossier.decide` stored."""
    shown: dict[str, Any] = {"reason": "", "appointment_date": "", "old_appointment_date": ""}
    for name, value in values.items():
        if isinstance(value, dict) and "vi" in value:
            value = value.get(lang) or value["vi"]
        elif name.endswith("_date") and isinstance(value, str):
            value = date.fromisoformat(value)
        shown[name] = value
    shown["missing_lines"] = "\n".join(
        render(
            "notice.missing_line",
            lang,
            index=i,
            component=item["component"].get(lang) or item["component"]["vi"],
            reason=item["reason"],
        )
        for i, item in enumerate(values.get("missing", []), start=1)
    )
    originals = values.get("originals", [])
    shown["originals_lines"] = "\n".join(
        render("notice.original_line", lang, component=o.get(lang) or o["vi"]) for o in originals
    ) or render("notice.no_originals", lang)
    shown["fee"] = format_fee(int(values.get("fee_vnd", 0)), lang)
    return render(key, lang, **shown)


def rating_buttons(code: str, lang: str) -> tuple[tuple[Button, ...], ...]:
    """The 1–5 buttons sent with the rating request when a dossier ends."""
    return (tuple(Button("⭐" * n, f"rate:{code}:{n}") for n in range(1, 6)),)


def notice_reply(key: str, values: dict[str, Any], lang: str = "vi") -> Reply:
    """What a chat channel sends for one outbox notice: the text, plus the buttons that lead
    back into the dialogue (rate 1–5; send the supplement; answer the desk)."""
    text = render_notice(key, values, lang)
    buttons: tuple[tuple[Button, ...], ...] = ()
    if key == RATING_REQUEST:
        buttons = rating_buttons(str(values["code"]), lang)
    elif key in SUPPLEMENT_NOTICES:  # one tap from the notice to sending the missing papers
        buttons = ((Button(render("chat.button.supplement", lang), "menu:supplement"),),)
    elif key == DESK_REPLY:  # the citizen can answer the officer in the same thread
        buttons = ((Button(render("chat.button.reply_desk", lang), f"reply:{values['code']}"),),)
    return Reply(text, buttons)
