"""The desk's official forms 01–05 (Circular 01/2018 Art. 9–10) as data, then as a PNG image.

`build_form` turns the facts of a dossier into a `FormSheet` (title, labelled rows, a list, a
note) in one language; the panel renders the sheet as a printable HTML page (templates/web) and
`form_png` draws it as an image to send in a chat. Wording lives in templates/messages/forms.toml.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from core.calendar import to_local
from core.catalog import Procedure, Text
from core.messages import render
from core.notices import format_fee
from core.qr import qr_png

FORM_NUMBERS = ("01", "02", "03", "04", "05")


@dataclass(frozen=True)
class FormStep:
    at: datetime
    action: str  # already in the form's language
    officer: str
    result: str


@dataclass(frozen=True)
class FormFacts:
    code: str
    lookup_url: str
    agency: Text
    procedure: Procedure
    applicant: str
    phone: str
    id_number: str
    submitted_at: datetime
    received_at: datetime | None
    appointment_date: date | None
    files_per_component: dict[str, int] = field(default_factory=dict)
    missing: list[tuple[Text, str]] = field(default_factory=list)  # component, reason
    reason: str = ""
    right_agency: str = ""
    old_appointment_date: date | None = None
    steps: list[FormStep] = field(default_factory=list)
    officer: str = ""


@dataclass(frozen=True)
class FormSheet:
    number: str
    header: str
    title: str
    form_label: str
    code: str
    lookup_url: str
    rows: list[tuple[str, str]]
    list_title: str
    items: list[str]
    note: str
    officer_label: str
    officer: str
    lookup_hint: str


def _t(key: str, lang: str, **values: object) -> str:
    return render(f"forms.{key}", lang, **values)


def _when(moment: datetime | None) -> str:
    return to_local(moment).strftime("%H:%M %d/%m/%Y") if moment else "—"


def _day(day: date | None) -> str:
    return day.strftime("%d/%m/%Y") if day else "—"


def build_form(number: str, facts: FormFacts, lang: str = "vi") -> FormSheet:
    """One of the five forms for this dossier, in `lang` (Vietnamese is the official one)."""
    if number not in FORM_NUMBERS:
        raise ValueError(f"unknown form {number}")
    procedure = facts.procedure
    applicant = [
        (_t("applicant", lang), facts.applicant or "—"),
        (_t("phone", lang), facts.phone or "—"),
    ]
    if facts.id_number:
        applicant.append((_t("id_number", lang), facts.id_number))
    head = [(_t("agency", lang), facts.agency.get(lang)), *applicant]
    request = (_t("procedure", lang), procedure.name.get(lang))
    rows: list[tuple[str, str]]
    items: list[str] = []
    list_title, note = "", ""
    match number:
        case "01":
            days = (
                _t("same_day", lang)
                if procedure.same_day
                else _t("processing_days_value", lang, days=procedure.processing_days)
            )
            rows = [
                *head,
                request,
                (_t("processing_days", lang), days),
                (_t("received", lang), _when(facts.received_at)),
                (_t("appointment", lang), _day(facts.appointment_date)),
                (_t("collect_at", lang), facts.agency.get(lang)),
                (_t("fee", lang), format_fee(procedure.fee_vnd, lang)),
            ]
            list_title = _t("components", lang)
            items = [
                _t(
                    "component_line",
                    lang,
                    name=c.name.get(lang),
                    count=facts.files_per_component.get(c.code, 0),
                    original=_t("bring_original", lang) if c.bring_original else "",
                )
                for c in procedure.components
                if facts.files_per_component.get(c.code)
            ]
        case "02":
            rows = [*head, request, (_t("received", lang), _when(facts.submitted_at))]
            list_title = _t("missing", lang)
            items = [
                _t("missing_line", lang, name=name.get(lang), reason=reason)
                for name, reason in facts.missing
            ]
            note = _t("supplement_note", lang)
        case "03":
            rows = [*head, request, (_t("reason", lang), facts.reason or "—")]
            if facts.right_agency:
                rows.append((_t("right_agency", lang), facts.right_agency))
        case "04":
            rows = [
                (_t("applicant", lang), facts.applicant or "—"),
                request,
                (_t("code", lang), facts.code),
                (_t("received", lang), _when(facts.received_at)),
                (_t("old_appointment", lang), _day(facts.old_appointment_date)),
                (_t("new_appointment", lang), _day(facts.appointment_date)),
                (_t("reason", lang), facts.reason or "—"),
                (_t("agency", lang), facts.agency.get(lang)),
            ]
            note = _t("apology", lang)
        case _:
            rows = [
                (_t("code", lang), facts.code),
                request,
                (_t("received", lang), _when(facts.received_at)),
                (_t("appointment", lang), _day(facts.appointment_date)),
            ]
            list_title = _t("steps", lang)
            items = [
                _t(
                    "step_line",
                    lang,
                    at=_when(step.at),
                    action=step.action,
                    officer=f" ({step.officer})" if step.officer else "",
                    result=step.result,
                )
                for step in facts.steps
            ]
    return FormSheet(
        number=number,
        header=render("forms.header", lang),
        title=_t(f"title.{number}", lang),
        form_label=_t("form_no", lang, number=number),
        code=facts.code,
        lookup_url=facts.lookup_url,
        rows=rows,
        list_title=list_title,
        items=items,
        note=note,
        officer_label=_t("officer", lang),
        officer=facts.officer,
        lookup_hint=_t("lookup", lang, code=facts.code),
    )


# --- PNG ------------------------------------------------------------------------------------

_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
)
WIDTH, MARGIN = 1100, 56


@lru_cache(maxsize=8)
def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A system font with Vietnamese glyphs when there is one; Pillow's own otherwise."""
    for candidate in _FONT_CANDIDATES:
        path = Path(candidate.replace("Sans.ttf", "Sans-Bold.ttf") if bold else candidate)
        if path.exists():
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: object, width: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.split("\n"):
        current = ""
        for word in paragraph.split():
            candidate = f"{current} {word}".strip()
            if draw.textlength(candidate, font=font) <= width:  # type: ignore[arg-type]
                current = candidate
            else:
                if current:
                    lines.append(current)
                current = word
        lines.append(current)
    return lines


def form_png(sheet: FormSheet) -> bytes:
    """The form as a PNG, readable on a phone: header, title, QR, rows, list, note."""
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    body, small, title_font = _font(26), _font(22), _font(32, bold=True)
    inner = WIDTH - 2 * MARGIN
    blocks: list[tuple[str, object, int]] = []  # (line, font, indent)
    for line in sheet.header.split("\n"):
        blocks.append((line, small, -1))
    blocks.append(("", small, 0))
    for line in _wrap(scratch, sheet.title, title_font, inner):
        blocks.append((line, title_font, 0))
    blocks.append((f"{sheet.form_label} · {sheet.code}", small, 0))
    blocks.append(("", small, 0))
    for label, value in sheet.rows:
        for i, line in enumerate(_wrap(scratch, f"{label}: {value}", body, inner)):
            blocks.append((line, body, 0 if i == 0 else 24))
    if sheet.items:
        blocks.append(("", small, 0))
        blocks.append((sheet.list_title + ":", body, 0))
        for index, item in enumerate(sheet.items, start=1):
            for i, line in enumerate(_wrap(scratch, f"{index}. {item}", body, inner - 24)):
                blocks.append((line, body, 24 if i == 0 else 56))
    if sheet.note:
        blocks.append(("", small, 0))
        for line in _wrap(scratch, sheet.note, small, inner):
            blocks.append((line, small, 0))
    blocks.append(("", small, 0))
    blocks.append((f"{sheet.officer_label}: {sheet.officer or '—'}", body, 0))
    blocks.append((sheet.lookup_hint, small, 0))
    line_height = 40
    qr_side = 220
    height = 2 * MARGIN + line_height * len(blocks) + qr_side
    image = Image.new("RGB", (WIDTH, height), "white")
    draw = ImageDraw.Draw(image)
    y = MARGIN
    for line, font, indent in blocks:
        x = MARGIN + max(indent, 0)
        if indent < 0:  # centred header lines
            x = (WIDTH - int(draw.textlength(line, font=font))) // 2  # type: ignore[arg-type]
        draw.text((x, y), line, fill="black", font=font)  # type: ignore[arg-type]
        y += line_height
    qr = Image.open(io.BytesIO(qr_png(sheet.lookup_url))).convert("RGB")
    image.paste(qr.resize((qr_side, qr_side)), (WIDTH - MARGIN - qr_side, y))
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()
