"""Turn a `Notice` (message key + JSON-safe values, kept in the outbox) into the citizen text."""

from __future__ import annotations

from datetime import date
from typing import Any

from core.messages import render


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
