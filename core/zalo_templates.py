"""Which Zalo template message (ZNS) carries which status notice, as data
(`data/zalo/templates.toml`), and how each template parameter is filled from the notice's values.

A status push outside Zalo's 7-day window cannot go as a chat message; it goes as the template
approved for that notice, or by SMS when none is configured. Templates are approved by Zalo in
advance with fixed parameter names, so the mapping is checked at start-up against what the
business API declares for each template (`check_declared`).
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from core.channels import Channel, Contact
from core.notices import format_fee

TRACKING_ID_LIMIT = 48  # Zalo's limit on a template message's tracking_id

# The notices a template may carry (templates/messages/notice.toml).
NOTICES = frozenset(
    {
        "notice.submitted",  # received
        "notice.accepted",  # accepted, with the appointment date
        "notice.supplement_requested",
        "notice.refused",
        "notice.extended",
        "notice.result_ready",
        "notice.returned",
        "notice.rating_request",
    }
)
# What a template parameter can be filled with: a value of the notice, shown as text.
SOURCES = frozenset(
    {
        "code",
        "procedure",
        "appointment_date",
        "old_appointment_date",
        "reason",
        "fee",
        "missing",  # the components asked for, comma-separated
    }
)


class TemplateConfigError(ValueError):
    pass


@dataclass(frozen=True)
class TemplateMapping:
    notice: str
    template_id: str
    params: dict[str, str]  # template parameter name → source (one of SOURCES)


@dataclass(frozen=True)
class DeclaredTemplate:
    """What Zalo's `template/info/v2` says about an approved template."""

    template_id: str
    status: str
    params: tuple[str, ...]
    required: frozenset[str]


def load_templates(path: Path) -> dict[str, TemplateMapping]:
    """The mapping file, validated: notice key → template. A missing file maps nothing."""
    if not path.exists():
        return {}
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    return parse_templates(data, str(path))


def parse_templates(data: dict[str, Any], where: str = "templates") -> dict[str, TemplateMapping]:
    unknown = set(data) - {"templates"}
    if unknown:
        raise TemplateConfigError(f"{where}: unknown top-level keys {sorted(unknown)}")
    mappings: dict[str, TemplateMapping] = {}
    for notice, entry in (data.get("templates") or {}).items():
        if notice not in NOTICES:
            raise TemplateConfigError(f"{where}: {notice!r} is not a notice a template can carry")
        if not isinstance(entry, dict) or set(entry) - {"template_id", "params"}:
            raise TemplateConfigError(f"{where}: {notice} takes template_id and params only")
        template_id = entry.get("template_id")
        if not isinstance(template_id, str) or not template_id.strip():
            raise TemplateConfigError(f"{where}: {notice} needs a template_id")
        params = entry.get("params") or {}
        if not isinstance(params, dict) or not params:
            raise TemplateConfigError(f"{where}: {notice} needs its params")
        for name, source in params.items():
            if source not in SOURCES:
                raise TemplateConfigError(
                    f"{where}: {notice}.params.{name} = {source!r}; use one of {sorted(SOURCES)}"
                )
        mappings[notice] = TemplateMapping(notice, template_id.strip(), dict(params))
    return mappings


def check_declared(mapping: TemplateMapping, declared: DeclaredTemplate) -> list[str]:
    """What is wrong between our mapping and the approved template (empty: nothing)."""
    problems = []
    where = f"{mapping.notice} (template {mapping.template_id})"
    if declared.status != "ENABLE":
        problems.append(f"{where}: status is {declared.status}, not ENABLE")
    for name in sorted(set(mapping.params) - set(declared.params)):
        problems.append(f"{where}: parameter {name!r} is not declared by the template")
    for name in sorted(declared.required - set(mapping.params)):
        problems.append(f"{where}: required parameter {name!r} is not filled")
    return problems


def template_data(mapping: TemplateMapping, values: dict[str, Any]) -> dict[str, str]:
    """The template's parameters from the notice's stored values (Vietnamese, dd/mm/yyyy)."""
    return {name: _value(source, values) for name, source in mapping.params.items()}


def _value(source: str, values: dict[str, Any]) -> str:
    if source == "fee":
        return format_fee(int(values.get("fee_vnd", 0)), "vi")
    if source == "missing":
        return ", ".join(item["component"]["vi"] for item in values.get("missing", []))
    value = values.get(source)
    if isinstance(value, dict):
        value = value.get("vi", "")
    if source.endswith("_date") and isinstance(value, str) and value:
        return date.fromisoformat(value).strftime("%d/%m/%Y")
    return "" if value is None else str(value)


# ---------------------------------------------------------------------------- the 7-day window

# A consultation message (/message/cs) needs the citizen's interaction in the last 7 days.
CHAT_WINDOW = timedelta(days=7)


def chat_window_open(contact: Contact | None, now: datetime) -> bool:
    """Can a consultation message reach this follower now? Not after an unfollow, not when
    their last interaction is older than the window or unknown."""
    if contact is None or contact.unreachable_at is not None or contact.last_seen_at is None:
        return False
    return now - contact.last_seen_at < CHAT_WINDOW


def off_chat_channel(notice: str, templates: Mapping[str, TemplateMapping]) -> Channel:
    """How a notice goes when the chat cannot carry it: the template message configured for
    it, else SMS."""
    return Channel.ZALO_TEMPLATE if notice in templates else Channel.SMS


def push_channel(
    notice: str,
    contact: Contact | None,
    now: datetime,
    templates: Mapping[str, TemplateMapping],
) -> Channel:
    """Where a status push to a Zalo follower goes: the chat inside the window, otherwise
    straight to the template message or SMS (instead of failing with -230 first)."""
    if chat_window_open(contact, now):
        return Channel.ZALO
    return off_chat_channel(notice, templates)


def tracking_id_for(key: str) -> str:
    """A template message's `tracking_id` (≤ 48 characters) for an outbox idempotency key:
    the key itself when short enough, else a digest of it (the receipt is matched by this)."""
    if len(key) <= TRACKING_ID_LIMIT:
        return key
    return hashlib.sha256(key.encode()).hexdigest()[:TRACKING_ID_LIMIT]
