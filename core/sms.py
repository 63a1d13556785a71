"""Status lookup by SMS: "HS <code>" in, one unaccented GSM-7 SMS (≤ 160 characters) out;
"DK <code>" / "HUY <code>" start and stop a dossier's status pushes by SMS."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from core.codes import DossierCode, parse_code
from core.dossier import Status
from core.lookup import PublicStatus
from core.messages import render, strip_diacritics

SMS_LIMIT = 160
SMS_TEXT = "sms.reply"  # an outbox SMS whose text is already written (values: text)
# Keywords people send before the code: hồ sơ, tra cứu (with or without diacritics, spaces).
_KEYWORD = re.compile(r"^\s*(HS|HOSO|HO\s+SO|TC|TRACUU|TRA\s+CUU)\b\W*", re.IGNORECASE)
_KEYWORD_GLUED = re.compile(r"^\s*(HS|TC)(?=\d)", re.IGNORECASE)
# Subscribing to a dossier's status pushes: đăng ký / hủy (with or without diacritics).
_SUBSCRIBE = re.compile(r"^\s*(DK|DANG\s*KY)(\b\W*|(?=\d))", re.IGNORECASE)
_UNSUBSCRIBE = re.compile(r"^\s*(HUY)(\b\W*|(?=\d))", re.IGNORECASE)
_PHONE_DIGITS = re.compile(r"\d{8,15}")

# The GSM 03.38 basic alphabet (one septet each), written as data, not as prose.
_GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = set("^{}\\[~]|€")
_PLAIN = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'", "–": "-", "—": "-", "…": "..."})


def parse_lookup_request(text: str) -> DossierCode | None:
    """The code asked about in an SMS such as "HS 000.00.10.H53-261122-0001", or None."""
    plain = strip_diacritics(text)
    match = _KEYWORD.match(plain) or _KEYWORD_GLUED.match(plain)
    if match is None:
        return None
    return parse_code(plain[match.end() :])


class SmsAsk(StrEnum):
    LOOKUP = "lookup"  # HS / TC <code>
    SUBSCRIBE = "subscribe"  # DK <code>: push this dossier's status changes to my phone
    UNSUBSCRIBE = "unsubscribe"  # HUY <code>


@dataclass(frozen=True)
class SmsCommand:
    ask: SmsAsk
    code: DossierCode


def parse_sms_command(text: str) -> SmsCommand | None:
    """What an SMS to the short code asks, or None (no keyword, no code, a wrong code: the
    usage line answers)."""
    plain = strip_diacritics(text)
    for ask, keyword in ((SmsAsk.SUBSCRIBE, _SUBSCRIBE), (SmsAsk.UNSUBSCRIBE, _UNSUBSCRIBE)):
        match = keyword.match(plain)
        if match is not None:
            code = parse_code(plain[match.end() :])
            return SmsCommand(ask, code) if code is not None else None
    code = parse_lookup_request(text)
    return SmsCommand(SmsAsk.LOOKUP, code) if code is not None else None


def msisdn(phone: str) -> str | None:
    """A Vietnamese phone number as gateways write it, in one form: 84 and the digits
    ("+84912…", "0912…", "84912…" → "84912…"); None when it is not a phone number."""
    digits = re.sub(r"[\s.()-]", "", phone).removeprefix("+")
    if not _PHONE_DIGITS.fullmatch(digits):
        return None
    return "84" + digits[1:] if digits.startswith("0") else digits


def gsm_length(text: str) -> int:
    return sum(2 if ch in _GSM7_EXTENDED else 1 for ch in text)


def to_gsm7(text: str) -> str:
    """Unaccented text in the GSM-7 alphabet (anything else becomes '?'), one line."""
    plain = strip_diacritics(text.translate(_PLAIN)).replace("\n", " ")
    return "".join(ch if ch in _GSM7_BASIC or ch in _GSM7_EXTENDED else "?" for ch in plain)


def _fit(parts: list[str]) -> str:
    """Join as many parts as fit in one SMS; the first part always goes (trimmed if needed)."""
    reply = to_gsm7(parts[0])
    for part in parts[1:]:
        candidate = f"{reply} {to_gsm7(part)}"
        if gsm_length(candidate) <= SMS_LIMIT:
            reply = candidate
    while gsm_length(reply) > SMS_LIMIT:
        reply = reply[:-1]
    return reply


def _status_parts(code: str, status: Status, appointment_date: date | None) -> list[str]:
    parts = [render("sms.status", "vi", code=code, status=render(f"status.{status.value}", "vi"))]
    if appointment_date:
        parts.append(render("sms.appointment", "vi", date=appointment_date))
    parts.append(render(f"sms.next.{status.value}", "vi"))
    return parts


def status_reply(status: PublicStatus, lookup_url: str) -> str:
    code = status.official_code or status.code  # the province's code once it gave one
    parts = _status_parts(code, status.status, status.appointment_date)
    return _fit([*parts, render("sms.link", "vi", url=lookup_url)])


def status_push(code: str, status: Status, appointment_date: date | None) -> str:
    """What a phone subscribed with "DK <code>" is sent at a status change: the lookup's public
    status in one SMS — it proved no more than knowing the code, so it gets no more than the
    lookup shows (not the desk's reasons or lists)."""
    return _fit(_status_parts(code, status, appointment_date))


def unknown_code_reply(code: DossierCode) -> str:
    return _fit([render("sms.unknown_code", "vi", code=str(code)), render("sms.usage", "vi")])


def usage_reply() -> str:
    return _fit([render("sms.usage", "vi")])


def subscribed_reply(code: str) -> str:
    return _fit([render("sms.subscribed", "vi", code=code)])


def unsubscribed_reply(code: str) -> str:
    return _fit([render("sms.unsubscribed", "vi", code=code)])


def sms_parts(text: str, limit: int = SMS_LIMIT) -> list[str]:
    """A pushed notice as unaccented GSM-7 SMS parts of at most `limit` characters each,
    split between words (one gateway request per part, so no concatenation support is needed)."""
    parts: list[str] = []
    current = ""
    for word in to_gsm7(text).split():
        while gsm_length(word) > limit:  # a URL longer than one SMS: cut it
            head, word = word[:limit], word[limit:]
            if current:
                parts.append(current)
                current = ""
            parts.append(head)
        candidate = f"{current} {word}" if current else word
        if gsm_length(candidate) <= limit:
            current = candidate
        else:
            parts.append(current)
            current = word
    if current:
        parts.append(current)
    return parts
