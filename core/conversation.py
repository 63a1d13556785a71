"""The citizen dialogue, written once for every channel (Telegram, Zalo, web chat, tests).

`handle(conversation, incoming, ...)` takes what the citizen sent and returns what to answer; the
transport translates its own updates into `Incoming` and `Reply` back into its own messages.
Every step of the dialogue (`Step`) is declared once, in `STEPS` at the end of this module: how it
takes an input, what it asks, and where "back" leads.
Dialogue state holds only dialogue; anything that reaches the back office (files, dossiers,
lookups) goes through the `Backoffice` protocol, implemented over storage in `storage.intake`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from core.catalog import Catalog, DocumentComponent, Procedure
from core.cccd import parse_cccd
from core.codes import parse_code
from core.documents import CheckedDocument, DocumentProblem, StorageUnavailable, check_document
from core.geo import Location, format_km
from core.lookup import PublicStatus
from core.messages import render, strip_diacritics
from core.notices import format_fee
from core.phone import normalize_phone
from core.qr import code_in_lookup_url, read_qr_codes
from core.replies import Button, Reply

# ---------------------------------------------------------------------------- what goes in / out


@dataclass(frozen=True)
class IncomingFile:
    data: bytes
    name: str = ""


@dataclass(frozen=True)
class Incoming:
    """One thing the citizen did. An album of photos arrives as one Incoming with several files."""

    text: str = ""
    button: str = ""  # data of a pressed button
    files: tuple[IncomingFile, ...] = ()
    phone: str = ""  # a shared contact
    location: Location | None = None  # a shared location (latitude, longitude)
    unsupported: bool = False  # sticker, voice… anything this dialogue cannot use


@dataclass(frozen=True)
class Submitted:
    code: str
    lookup_url: str
    qr_png: bytes


class Backoffice(Protocol):
    """What the dialogue needs from the rest of the product."""

    def store_file(self, document: CheckedDocument) -> dict[str, Any]: ...
    def submit(self, conversation: Conversation) -> Submitted: ...
    def lookup(self, text: str) -> PublicStatus | None: ...
    def my_dossiers(self) -> list[PublicStatus]: ...
    def open_supplement(self) -> SupplementRequest | None: ...
    def resubmit(self, conversation: Conversation) -> None: ...
    def rate(self, code: str, stars: int) -> bool: ...
    def comment_rating(self, code: str, comment: str) -> None: ...
    def feedback(self, text: str, files: list[dict[str, Any]]) -> None: ...
    def message_desk(self, code: str, text: str) -> bool: ...


@dataclass(frozen=True)
class SupplementRequest:
    """What the desk asked this citizen to add or fix (Phiếu yêu cầu bổ sung), for one dossier."""

    code: str
    procedure: str
    items: tuple[tuple[str, str], ...]  # (component code, reason)


# ---------------------------------------------------------------------------- dialogue state


class Step(StrEnum):
    """Where the citizen is. Stored by value in the conversation state: never rename a value."""

    MENU = "menu"
    CHOOSE_PROCEDURE = "choose_procedure"
    REQUIREMENTS = "requirements"  # what the procedure needs, before starting
    CHOOSE_AGENCY = "choose_agency"
    NAME = "name"
    PHONE = "phone"
    DOCUMENTS = "documents"  # one paper after another (`Conversation.component`)
    REVIEW = "review"
    LOOKUP = "lookup"
    SUPPLEMENT = "supplement"  # the papers the desk asked for, one after another
    SUPPLEMENT_REVIEW = "supplement_review"
    RATING_COMMENT = "rating_comment"
    FEEDBACK = "feedback"
    REPLY_DESK = "reply_desk"  # writing to the desk about `Conversation.replying`


@dataclass
class Conversation:
    """Where the citizen is in the dialogue and what they have given so far (JSON-safe)."""

    step: Step = Step.MENU
    lang: str = "vi"
    procedure: str | None = None
    agency: str | None = None
    name: str = ""
    phone: str = ""
    component: int = 0
    files: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    editing: bool = False  # came from the review to change one thing; go back there after
    supplement: str | None = None  # dossier code being supplemented
    supplement_items: list[list[str]] = field(default_factory=list)  # [component code, reason]
    rating: str | None = None  # dossier code whose rating may get a comment
    replying: str | None = None  # dossier code whose desk the citizen is writing to
    id_number: str = ""  # kept only when the procedure lets it replace a paper
    offer: dict[str, str] = field(default_factory=dict)  # name and ID read from a CCCD photo
    near: dict[str, float] = field(default_factory=dict)  # agency → km from a shared location

    def to_json(self) -> dict[str, Any]:
        """The state as stored; it shares lists with the conversation, so serialise it at once."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Conversation:
        """From freshly decoded JSON (the dialogue then owns and mutates what it holds).

        A step this version does not know (stored by an older or newer one) starts at the menu."""
        values = {k: v for k, v in (data or {}).items() if k in cls.__dataclass_fields__}
        try:
            values["step"] = Step(values.get("step", Step.MENU))
        except ValueError:
            values["step"] = Step.MENU
        return cls(**values)

    def start_draft(self, procedure: str) -> None:
        self.procedure, self.agency, self.component, self.files = procedure, None, 0, {}
        self.editing, self.near = False, {}


CANCEL_WORDS = {"huy", "/cancel", "cancel", "thoat"}
BACK_WORDS = {"quay lai", "/back", "back", "tro lai"}
MENU_WORDS = {"/start", "menu", "/menu", "bat dau", "start"}


def _t(c: Conversation, key: str, **values: Any) -> str:
    return render(f"chat.{key}", c.lang, **values)


def _button(c: Conversation, key: str, data: str) -> Button:
    return Button(_t(c, f"button.{key}"), data)


def handle(
    c: Conversation, incoming: Incoming, *, catalog: Catalog, backoffice: Backoffice
) -> list[Reply]:
    """Advance the dialogue by one input; mutates `c` and returns the replies to send."""
    words = strip_diacritics(incoming.text).strip().lower()
    command = incoming.button or words
    if command.startswith("/start"):
        payload = incoming.text.strip()[len("/start") :].strip()
        return _start(c, payload, catalog)
    if command in MENU_WORDS or command == "menu:home":
        return [_enter(c, Step.MENU, catalog)]
    if command in CANCEL_WORDS or command == "nav:cancel":
        c.procedure, c.files, c.supplement, c.supplement_items = None, {}, None, []
        c.near = {}
        return [Reply(_t(c, "cancelled")), _enter(c, Step.MENU, catalog)]
    if command in BACK_WORDS or command == "nav:back":
        return [_back(c, catalog)]
    if command == "nav:resume":  # a page reloaded: ask again what the current step asks
        return [_prompt(c, catalog)]
    if incoming.button.startswith("reply:"):  # "answer the desk" comes with a desk's message
        c.replying = incoming.button.removeprefix("reply:")
        return [_enter(c, Step.REPLY_DESK, catalog)]
    if incoming.button.startswith("rate:"):  # rating buttons come with a pushed notice
        return _rate(c, incoming.button, catalog, backoffice)
    if incoming.button.startswith("menu:"):  # menu buttons work from any step
        return _on_menu(c, incoming, catalog, backoffice)
    if incoming.unsupported:
        return [Reply(_t(c, "unsupported")), _prompt(c, catalog)]
    if incoming.location is not None and not STEPS[c.step].takes_location:
        return [Reply(_t(c, "location_not_here")), _prompt(c, catalog)]
    return STEPS[c.step].handle(c, incoming, catalog, backoffice)


def _enter(c: Conversation, step: Step, catalog: Catalog) -> Reply:
    """Move to `step` and ask what it asks."""
    c.step = step
    return _prompt(c, catalog)


def _prompt(c: Conversation, catalog: Catalog) -> Reply:
    """What the current step asks for (on entering, after back, a reload, an unexpected input)."""
    return STEPS[c.step].prompt(c, catalog)


def _back(c: Conversation, catalog: Catalog) -> Reply:
    """One step back, keeping what was given."""
    c.editing = False
    back = STEPS[c.step].back
    return _enter(c, back if isinstance(back, Step) else back(c, catalog), catalog)


def _start(c: Conversation, payload: str, catalog: Catalog) -> list[Reply]:
    """/start, optionally with a deep-link payload naming a procedure (its slug or code)."""
    welcome = Reply(_t(c, "welcome"))
    for procedure in catalog.procedures.values():
        if payload and payload in (procedure.slug, procedure.code):
            c.start_draft(procedure.code)
            return [welcome, _enter(c, Step.REQUIREMENTS, catalog)]
    return [welcome, _enter(c, Step.MENU, catalog)]


def _menu(c: Conversation, catalog: Catalog) -> Reply:
    return Reply(
        _t(c, "menu"),
        (
            (_button(c, "submit", "menu:submit"),),
            (_button(c, "lookup", "menu:lookup"), _button(c, "mine", "menu:mine")),
            (_button(c, "supplement", "menu:supplement"), _button(c, "feedback", "menu:feedback")),
            (_button(c, "language", "menu:language"),),
        ),
    )


def _on_menu(c: Conversation, i: Incoming, catalog: Catalog, bo: Backoffice) -> list[Reply]:
    match i.button:
        case "menu:submit":
            return [_enter(c, Step.CHOOSE_PROCEDURE, catalog)]
        case "menu:lookup":
            return [_enter(c, Step.LOOKUP, catalog)]
        case "menu:mine":
            return [_my_dossiers(c, bo)]
        case "menu:supplement":
            return _start_supplement(c, catalog, bo)
        case "menu:feedback":
            return [_enter(c, Step.FEEDBACK, catalog)]
        case "menu:language":  # from any step: ask the same again, in the other language
            c.lang = "en" if c.lang == "vi" else "vi"
            return [_prompt(c, catalog)]
    if i.text and parse_code(i.text):
        return [_lookup_reply(c, i.text, bo)]
    if i.files:  # a photo in the menu: most likely the QR code of a receipt
        return [_lookup_by_photo(c, i.files, bo), _menu(c, catalog)]
    if i.text:
        found = catalog.search(i.text)
        if found:
            c.step = Step.CHOOSE_PROCEDURE
            return _choose_from(c, found, catalog)
    return [Reply(_t(c, "menu_hint")), _enter(c, Step.MENU, catalog)]


def _procedure_list(
    c: Conversation, catalog: Catalog, procedures: list[Procedure], intro: str
) -> Reply:
    """Procedures as buttons, grouped by field (lĩnh vực)."""
    lines, rows = [_t(c, f"procedures_{intro}")], []
    for field_name in dict.fromkeys(p.field.get(c.lang) for p in procedures):
        lines.append(f"\n{field_name}:")
        for p in procedures:
            if p.field.get(c.lang) == field_name:
                lines.append(f"• {p.name.get(c.lang)}")
                rows.append((Button(p.name.get(c.lang), f"proc:{p.code}"),))
    rows.append((_button(c, "menu", "menu:home"),))
    return Reply("\n".join(lines), tuple(rows))


def _every_procedure(c: Conversation, catalog: Catalog) -> Reply:
    return _procedure_list(c, catalog, list(catalog.procedures.values()), "choose")


def _choose_from(c: Conversation, found: list[Procedure], catalog: Catalog) -> list[Reply]:
    if len(found) == 1:
        c.start_draft(found[0].code)
        return [_enter(c, Step.REQUIREMENTS, catalog)]
    return [_procedure_list(c, catalog, found, "found")]


def _on_choose_procedure(
    c: Conversation, i: Incoming, catalog: Catalog, bo: Backoffice
) -> list[Reply]:
    if i.button.startswith("proc:") and i.button[5:] in catalog.procedures:
        return _choose_from(c, [catalog.procedure(i.button[5:])], catalog)
    if i.text:
        found = catalog.search(i.text)
        if found:
            return _choose_from(c, found, catalog)
        return [
            Reply(_t(c, "procedure_not_found", text=i.text.strip())),
            _every_procedure(c, catalog),
        ]
    return [_every_procedure(c, catalog)]


def _requirements(c: Conversation, catalog: Catalog) -> Reply:
    procedure, lang = catalog.procedure(c.procedure or ""), c.lang
    papers = "\n".join(
        _t(c, "paper_required" if comp.required else "paper_optional", name=comp.name.get(lang))
        for comp in procedure.components
    )
    originals = "\n".join(
        f"• {comp.name.get(lang)}" for comp in procedure.components if comp.bring_original
    ) or _t(c, "no_originals")
    days = _t(c, "same_day") if procedure.same_day else _t(c, "days", n=procedure.processing_days)
    where = ", ".join(a.name.get(lang) for a in catalog.receiving_agencies(procedure))
    text = _t(
        c,
        "requirements",
        procedure=procedure.name.get(lang),
        papers=papers,
        originals=originals,
        days=days,
        fee=format_fee(procedure.fee_vnd, lang),
        result=procedure.result.get(lang),
        where=where,
    )
    return Reply(
        text,
        ((_button(c, "start", "req:start"),), (_button(c, "back", "nav:back"),)),
    )


def _on_requirements(c: Conversation, i: Incoming, catalog: Catalog, bo: Backoffice) -> list[Reply]:
    if i.button == "req:start":
        return _start_submission(c, catalog)
    if i.files:  # the screen lists the papers to photograph, so people send the first at once
        first = catalog.procedure(c.procedure or "").components[0]
        lines = _keep_files(c, i.files, first, c.files.setdefault(first.code, []), bo)
        kept = [Reply("\n".join(lines))] if lines else []
        return [*kept, *_start_submission(c, catalog)]
    return [Reply(_t(c, "press_start")), _requirements(c, catalog)]


def _start_submission(c: Conversation, catalog: Catalog) -> list[Reply]:
    agencies = catalog.receiving_agencies(catalog.procedure(c.procedure or ""))
    if len(agencies) == 1:
        c.agency = agencies[0].code
        return _ask_name(c, catalog)
    return [_enter(c, Step.CHOOSE_AGENCY, catalog)]


def _agency_choice(c: Conversation, catalog: Catalog) -> Reply:
    """The receiving agencies as buttons; after a shared location, nearest first with their
    distances (agencies without a known location last), else the catalog's order and an offer
    to share one."""
    agencies = catalog.receiving_agencies(catalog.procedure(c.procedure or ""))
    back = (_button(c, "back", "nav:back"),)
    if not c.near:
        rows = tuple((Button(a.name.get(c.lang), f"agency:{a.code}"),) for a in agencies)
        return Reply(_t(c, "choose_agency"), (*rows, back), ask_location=True)
    far = max(c.near.values()) + 1
    agencies.sort(key=lambda a: c.near.get(a.code, far))  # stable: ties keep the catalog's order
    lines = [
        _t(c, "agency_near", index=n, name=a.name.get(c.lang),
           km=format_km(c.near[a.code], c.lang))
        if a.code in c.near else _t(c, "agency_unplaced", index=n, name=a.name.get(c.lang))
        for n, a in enumerate(agencies, start=1)
    ]  # fmt: skip
    rows = tuple((Button(a.name.get(c.lang), f"agency:{a.code}"),) for a in agencies)
    return Reply(_t(c, "choose_agency_near", agencies="\n".join(lines)), (*rows, back))


def _on_choose_agency(
    c: Conversation, i: Incoming, catalog: Catalog, bo: Backoffice
) -> list[Reply]:
    procedure = catalog.procedure(c.procedure or "")
    if i.location is not None:
        distances = catalog.distances(procedure, i.location)
        c.near = {code: round(km, 1) for code, km in distances.items()}
        if not c.near:
            return [Reply(_t(c, "location_no_agency_places")), _agency_choice(c, catalog)]
        return [_agency_choice(c, catalog)]
    codes = {a.code for a in catalog.receiving_agencies(procedure)}
    if i.button.startswith("agency:") and i.button[7:] in codes:
        c.agency, c.near = i.button[7:], {}  # the distances are not kept past the choice
        return _ask_name(c, catalog)
    return [_agency_choice(c, catalog)]


def _ask_name(c: Conversation, catalog: Catalog) -> list[Reply]:
    if c.editing:
        return _review(c, catalog)
    return [_enter(c, Step.NAME, catalog)]


def _name_prompt(c: Conversation, catalog: Catalog) -> Reply:
    """No back button when changing the name from the review: back leads to the requirements."""
    return Reply(_t(c, "ask_name"), () if c.editing else ((_button(c, "back", "nav:back"),),))


def _on_name(c: Conversation, i: Incoming, catalog: Catalog, bo: Backoffice) -> list[Reply]:
    if i.button == "cccd:use" and c.offer:
        return _name_given(c, catalog, c.offer["name"], c.offer["id_number"])
    if i.button == "cccd:type":
        c.offer = {}
        return [_name_prompt(c, catalog)]
    if i.files:
        return [_cccd_offer(c, i.files)]
    name = " ".join(i.text.split())
    if not (2 <= len(name) <= 80) or not any(ch.isalpha() for ch in name):
        return [Reply(_t(c, "bad_name"))]
    return _name_given(c, catalog, name, "")


def _cccd_offer(c: Conversation, files: tuple[IncomingFile, ...]) -> Reply:
    """A photo of the back of a CCCD: read its QR code and offer what it says."""
    card = next((card for f in files for text in read_qr_codes(f.data)
                 if (card := parse_cccd(text)) is not None), None)  # fmt: skip
    if card is None:
        return Reply(_t(c, "cccd_unreadable"))
    c.offer = {"name": card.full_name, "id_number": card.id_number}
    born = card.birth_date.strftime("%d/%m/%Y") if card.birth_date else "—"
    text = _t(c, "cccd_found", name=card.full_name, id_number=card.id_number, born=born,
              address=card.address or "—")  # fmt: skip
    return Reply(
        text, ((_button(c, "cccd_use", "cccd:use"),), (_button(c, "cccd_type", "cccd:type"),))
    )


def _name_given(c: Conversation, catalog: Catalog, name: str, id_number: str) -> list[Reply]:
    """Keep the name, and the ID number only when this procedure can use it instead of a paper."""
    procedure = catalog.procedure(c.procedure or "")
    c.name, c.offer = name, {}
    c.id_number = id_number if any(p.optional_with_id_number for p in procedure.components) else ""
    if c.editing:
        return _review(c, catalog)
    return [_enter(c, Step.PHONE, catalog)]


def _phone_prompt(c: Conversation, catalog: Catalog) -> Reply:
    return Reply(_t(c, "ask_phone"), ((_button(c, "back", "nav:back"),),), ask_contact=True)


def _on_phone(c: Conversation, i: Incoming, catalog: Catalog, bo: Backoffice) -> list[Reply]:
    phone = normalize_phone(i.phone or i.text)
    if phone is None:
        return [Reply(_t(c, "bad_phone"), ask_contact=True)]
    c.phone = phone
    if c.editing:
        return _review(c, catalog)
    c.component = 0
    return [_enter(c, Step.DOCUMENTS, catalog)]


def _required(c: Conversation, comp: DocumentComponent) -> bool:
    """A paper the national population database replaces is optional once the ID is known."""
    return comp.required and not (comp.optional_with_id_number and bool(c.id_number))


def _current_component(c: Conversation, catalog: Catalog) -> DocumentComponent:
    return catalog.procedure(c.procedure or "").components[c.component]


def _document_prompt(c: Conversation, catalog: Catalog) -> Reply:
    procedure = catalog.procedure(c.procedure or "")
    comp = procedure.components[c.component]
    have = len(c.files.get(comp.code, []))
    text = _t(
        c,
        "ask_document",
        index=c.component + 1,
        total=len(procedure.components),
        name=comp.name.get(c.lang),
        hint=comp.hint.get(c.lang) or _t(c, "default_hint"),
        need=_t(c, "need_required" if _required(c, comp) else "need_optional", n=comp.min_files),
    )
    if have:
        text += "\n" + _t(c, "have_files", n=have)
    return Reply(text, _document_buttons(c, comp))


def _document_buttons(c: Conversation, comp: DocumentComponent) -> tuple[tuple[Button, ...], ...]:
    """Done, skip (an optional paper), back and cancel: on the question and after each batch."""
    rows: list[tuple[Button, ...]] = [(_button(c, "done", "doc:done"),)]
    if not _required(c, comp):
        rows.append((_button(c, "skip", "doc:skip"),))
    rows.append((_button(c, "back", "nav:back"), _button(c, "cancel", "nav:cancel")))
    return tuple(rows)


def _supplement_buttons(c: Conversation) -> tuple[tuple[Button, ...], ...]:
    return ((_button(c, "done", "doc:done"),), (_button(c, "cancel", "nav:cancel"),))


def _on_documents(c: Conversation, i: Incoming, catalog: Catalog, bo: Backoffice) -> list[Reply]:
    comp = _current_component(c, catalog)
    kept = c.files.setdefault(comp.code, [])
    if i.files:
        return _receive_files(c, i.files, comp, kept, bo, lambda: _next_component(c, catalog),
                              _document_buttons(c, comp))  # fmt: skip
    if i.button == "doc:done" or strip_diacritics(i.text).strip().lower() in ("xong", "done"):
        if len(kept) < max(comp.min_files, 1 if _required(c, comp) else 0):
            return [Reply(_t(c, "need_more", n=comp.min_files, name=comp.name.get(c.lang)))]
        return _next_component(c, catalog)
    if i.button == "doc:skip" and not _required(c, comp):
        c.files[comp.code] = []
        return _next_component(c, catalog)
    return [
        Reply(_t(c, "photo_expected", name=comp.name.get(c.lang))),
        _document_prompt(c, catalog),
    ]


def _receive_files(
    c: Conversation,
    files: tuple[IncomingFile, ...],
    comp: DocumentComponent,
    kept: list[dict[str, Any]],
    bo: Backoffice,
    advance: Callable[[], list[Reply]],
    buttons: tuple[tuple[Button, ...], ...],
) -> list[Reply]:
    """Check every file of a batch; keep the good ones; answer once for the whole batch, with
    the step's own buttons (a refused photo must not take "back" and "cancel" away)."""
    lines = _keep_files(c, files, comp, kept, bo)
    if len(kept) >= comp.max_files:
        return [Reply("\n".join(lines)), *advance()]
    lines.append(_t(c, "more_or_done"))
    return [Reply("\n".join(lines), buttons)]


def _keep_files(
    c: Conversation,
    files: tuple[IncomingFile, ...],
    comp: DocumentComponent,
    kept: list[dict[str, Any]],
    bo: Backoffice,
) -> list[str]:
    """The checks every file passes before it is kept for `comp`; what to tell the citizen."""
    problems, accepted = [], 0
    for number, file in enumerate(files, start=1):
        if len(kept) >= comp.max_files:
            problems.append(_t(c, "too_many_files", n=comp.max_files))
            break
        try:
            checked = check_document(file.data, comp.accepted_kinds)
        except DocumentProblem as problem:
            reason = render(f"document.{problem.reason}", c.lang, **problem.values)
            problems.append(_t(c, "file_refused", number=number, reason=reason))
            continue
        try:
            stored = bo.store_file(checked)
        except StorageUnavailable:  # nothing kept: the same photo is welcome again later
            problems.append(_t(c, "storage_busy"))
            break
        if any(f["sha256"] == stored["sha256"] for f in kept):
            continue  # the same photo twice counts once
        kept.append(stored)
        accepted += 1
    lines = []
    if accepted:
        lines.append(_t(c, "files_received", n=accepted, name=comp.name.get(c.lang)))
    return lines + problems


def _next_component(c: Conversation, catalog: Catalog) -> list[Reply]:
    total = len(catalog.procedure(c.procedure or "").components)
    if c.editing or c.component + 1 >= total:
        return _review(c, catalog)
    c.component += 1
    return [_document_prompt(c, catalog)]


def _review(c: Conversation, catalog: Catalog) -> list[Reply]:
    c.editing = False
    return [_enter(c, Step.REVIEW, catalog)]


def _review_reply(c: Conversation, catalog: Catalog) -> Reply:
    procedure = catalog.procedure(c.procedure or "")
    papers = "\n".join(
        _t(c, "review_paper", name=comp.name.get(c.lang), n=len(c.files.get(comp.code, [])))
        for comp in procedure.components
    )
    text = _t(
        c,
        "review",
        procedure=procedure.name.get(c.lang),
        agency=catalog.agency(c.agency or "").name.get(c.lang),
        name=c.name,
        phone=c.phone,
        papers=papers,
    )
    return Reply(
        text,
        (
            (_button(c, "consent_submit", "review:submit"),),
            (_button(c, "edit_name", "edit:name"), _button(c, "edit_phone", "edit:phone")),
            (_button(c, "edit_documents", "edit:documents"),),
            (_button(c, "cancel", "nav:cancel"),),
        ),
    )


def _on_review(c: Conversation, i: Incoming, catalog: Catalog, bo: Backoffice) -> list[Reply]:
    match i.button:
        case "review:submit":
            return _submit(c, catalog, bo)
        case "edit:name":
            c.editing = True
            return [_enter(c, Step.NAME, catalog)]
        case "edit:phone":
            c.editing = True
            return [_enter(c, Step.PHONE, catalog)]
        case "edit:documents":
            c.component = 0
            return [_enter(c, Step.DOCUMENTS, catalog)]
    return [Reply(_t(c, "review_hint")), _review_reply(c, catalog)]


def _submit(c: Conversation, catalog: Catalog, bo: Backoffice) -> list[Reply]:
    procedure = catalog.procedure(c.procedure or "")
    missing = [
        comp.name.get(c.lang)
        for comp in procedure.components
        if _required(c, comp) and len(c.files.get(comp.code, [])) < comp.min_files
    ]
    if missing:
        return [Reply(_t(c, "still_missing", papers=", ".join(missing))), _review_reply(c, catalog)]
    submitted = bo.submit(c)
    c.procedure, c.agency, c.files, c.component = None, None, {}, 0
    text = _t(c, "submitted", code=submitted.code, url=submitted.lookup_url)
    return [Reply(text, image_png=submitted.qr_png), _enter(c, Step.MENU, catalog)]


def _start_supplement(c: Conversation, catalog: Catalog, bo: Backoffice) -> list[Reply]:
    request = bo.open_supplement()
    if request is None:  # from any step: say so, then ask the same again
        return [Reply(_t(c, "no_supplement")), _prompt(c, catalog)]
    c.component, c.files = 0, {}
    c.supplement, c.procedure = request.code, request.procedure
    c.supplement_items = [[code, reason] for code, reason in request.items]
    return [Reply(_t(c, "supplement_intro", code=request.code, n=len(request.items))),
            _enter(c, Step.SUPPLEMENT, catalog)]  # fmt: skip


def _supplement_prompt(c: Conversation, catalog: Catalog) -> Reply:
    code, reason = c.supplement_items[c.component]
    comp = catalog.procedure(c.procedure or "").component(code)
    text = _t(
        c,
        "supplement_item",
        index=c.component + 1,
        total=len(c.supplement_items),
        name=comp.name.get(c.lang),
        reason=reason,
    )
    return Reply(text, _supplement_buttons(c))


def _on_supplement(c: Conversation, i: Incoming, catalog: Catalog, bo: Backoffice) -> list[Reply]:
    code, _ = c.supplement_items[c.component]
    comp = catalog.procedure(c.procedure or "").component(code)
    kept = c.files.setdefault(code, [])
    if i.files:
        return _receive_files(c, i.files, comp, kept, bo, lambda: _next_item(c, catalog),
                              _supplement_buttons(c))  # fmt: skip
    if i.button == "doc:done" or strip_diacritics(i.text).strip().lower() in ("xong", "done"):
        if not kept:  # everything asked for must come back: that is what the desk needs
            return [Reply(_t(c, "need_more", n=1, name=comp.name.get(c.lang)))]
        return _next_item(c, catalog)
    return [
        Reply(_t(c, "photo_expected", name=comp.name.get(c.lang))),
        _supplement_prompt(c, catalog),
    ]


def _next_item(c: Conversation, catalog: Catalog) -> list[Reply]:
    if c.component + 1 < len(c.supplement_items):
        c.component += 1
        return [_supplement_prompt(c, catalog)]
    return [_enter(c, Step.SUPPLEMENT_REVIEW, catalog)]


def _supplement_review(c: Conversation, catalog: Catalog) -> Reply:
    procedure = catalog.procedure(c.procedure or "")
    papers = "\n".join(
        _t(c, "review_paper", name=procedure.component(code).name.get(c.lang),
           n=len(c.files.get(code, [])))
        for code, _ in c.supplement_items
    )  # fmt: skip
    return Reply(
        _t(c, "supplement_review", code=c.supplement or "", papers=papers),
        ((_button(c, "send_supplement", "sup:send"),), (_button(c, "cancel", "nav:cancel"),)),
    )


def _on_supplement_review(
    c: Conversation, i: Incoming, catalog: Catalog, bo: Backoffice
) -> list[Reply]:
    if i.button != "sup:send":
        return [_supplement_review(c, catalog)]
    bo.resubmit(c)
    code = c.supplement
    c.supplement, c.supplement_items, c.files, c.procedure = None, [], {}, None
    return [Reply(_t(c, "supplement_sent", code=code)), _enter(c, Step.MENU, catalog)]


def _rate(c: Conversation, data: str, catalog: Catalog, bo: Backoffice) -> list[Reply]:
    code, _, stars = data.removeprefix("rate:").rpartition(":")
    if not stars.isdigit() or not 1 <= int(stars) <= 5 or not bo.rate(code, int(stars)):
        return [Reply(_t(c, "rating_refused")), _prompt(c, catalog)]  # the step goes on
    c.rating = code
    return [_enter(c, Step.RATING_COMMENT, catalog)]


def _rating_comment_prompt(c: Conversation, catalog: Catalog) -> Reply:
    return Reply(_t(c, "rating_thanks"), ((_button(c, "skip", "rating:skip"),),))


def _on_rating_comment(
    c: Conversation, i: Incoming, catalog: Catalog, bo: Backoffice
) -> list[Reply]:
    """Anything ends the step: a text is the comment, "skip" (or a photo) is no comment."""
    if i.text.strip() and c.rating:
        bo.comment_rating(c.rating, i.text.strip()[:2000])
    c.rating = None
    return [Reply(_t(c, "rating_done")), _enter(c, Step.MENU, catalog)]


def _reply_desk_prompt(c: Conversation, catalog: Catalog) -> Reply:
    return Reply(
        _t(c, "reply_desk_ask", code=c.replying or ""), ((_button(c, "cancel", "nav:cancel"),),)
    )


def _on_reply_desk(c: Conversation, i: Incoming, catalog: Catalog, bo: Backoffice) -> list[Reply]:
    """The citizen's answer to the desk, kept in the dossier's thread for the officer."""
    text = i.text.strip()
    if not text or i.files:
        return [Reply(_t(c, "reply_desk_text_only"), ((_button(c, "cancel", "nav:cancel"),),))]
    code, c.replying = c.replying or "", None
    answer = "reply_desk_sent" if bo.message_desk(code, text[:3000]) else "reply_desk_refused"
    return [Reply(_t(c, answer, code=code)), _enter(c, Step.MENU, catalog)]


def _feedback_prompt(c: Conversation, catalog: Catalog) -> Reply:
    return Reply(_t(c, "feedback_ask"), ((_button(c, "cancel", "nav:cancel"),),))


def _on_feedback(c: Conversation, i: Incoming, catalog: Catalog, bo: Backoffice) -> list[Reply]:
    """Phản ánh, kiến nghị: free text, optionally with a photo (checked like any document)."""
    stored = []
    for file in i.files:
        try:
            stored.append(bo.store_file(check_document(file.data)))
        except DocumentProblem as problem:
            reason = render(f"document.{problem.reason}", c.lang, **problem.values)
            return [Reply(_t(c, "file_refused", number=1, reason=reason))]
        except StorageUnavailable:
            return [Reply(_t(c, "storage_busy"))]
    text = i.text.strip()
    if not text and not stored:
        return [_feedback_prompt(c, catalog)]
    bo.feedback(text[:4000], stored)
    return [Reply(_t(c, "feedback_thanks")), _enter(c, Step.MENU, catalog)]


def _lookup_prompt(c: Conversation, catalog: Catalog) -> Reply:
    return Reply(_t(c, "lookup_ask"), ((_button(c, "menu", "menu:home"),),))


def _on_lookup(c: Conversation, i: Incoming, catalog: Catalog, bo: Backoffice) -> list[Reply]:
    again = Reply(_t(c, "lookup_again"), ((_button(c, "menu", "menu:home"),),))
    if i.files:
        return [_lookup_by_photo(c, i.files, bo), again]
    if not i.text.strip():
        return [_lookup_prompt(c, catalog)]
    return [_lookup_reply(c, i.text, bo), again]


def _lookup_by_photo(c: Conversation, files: tuple[IncomingFile, ...], bo: Backoffice) -> Reply:
    """A photo of a receipt's (or a screen's) QR code: look up the dossier it names."""
    for file in files:
        for text in read_qr_codes(file.data):
            code = code_in_lookup_url(text)
            if code is not None:
                return _lookup_reply(c, code, bo)
    return Reply(_t(c, "lookup_qr_unreadable"))


def _lookup_reply(c: Conversation, text: str, bo: Backoffice) -> Reply:
    status = bo.lookup(text)
    if status is None:
        return Reply(_t(c, "lookup_not_found", code=text.strip()))
    return Reply(_status_text(c, status))


def _status_text(c: Conversation, status: PublicStatus) -> str:
    appointment = (
        _t(c, "appointment", date=status.appointment_date) if status.appointment_date else ""
    )
    code = f"{status.code} ({status.official_code})" if status.official_code else status.code
    return _t(
        c,
        "status",
        code=code,
        procedure=status.procedure.get(c.lang),
        status=status.status_text(c.lang),
        appointment=appointment,
        next_step=status.next_step(c.lang),
    )


def _my_dossiers(c: Conversation, bo: Backoffice) -> Reply:
    mine = bo.my_dossiers()
    if not mine:
        return Reply(_t(c, "mine_empty"), ((_button(c, "submit", "menu:submit"),),))
    return Reply("\n\n".join([_t(c, "mine"), *(_status_text(c, s) for s in mine)]))


def _back_from_documents(c: Conversation, catalog: Catalog) -> Step:
    """The previous paper; before the first one, the phone number."""
    if c.component > 0:
        c.component -= 1
        return Step.DOCUMENTS
    return Step.PHONE


def _back_from_review(c: Conversation, catalog: Catalog) -> Step:
    """The last paper."""
    c.component = len(catalog.procedure(c.procedure or "").components) - 1
    return Step.DOCUMENTS


# ---------------------------------------------------------------------------- the steps

Handler = Callable[[Conversation, Incoming, Catalog, Backoffice], list[Reply]]
Prompt = Callable[[Conversation, Catalog], Reply]


@dataclass(frozen=True)
class StepEntry:
    """Everything one step does; handle, prompt and back are required, so no step lacks a prompt
    or a back."""

    handle: Handler  # an ordinary input (menu words, cancel, back, reload come before, in `handle`)
    prompt: Prompt  # what it asks: on entering, after back, a reload or an unexpected input
    back: Step | Callable[[Conversation, Catalog], Step]  # where "back" leads
    takes_location: bool = False  # a shared location is an input here; elsewhere it is refused


def _every_step(table: dict[Step, StepEntry]) -> dict[Step, StepEntry]:
    """The table, refused at import when a step has no entry."""
    if missing := set(Step) - table.keys():
        raise TypeError(f"steps without an entry in STEPS: {sorted(missing)}")
    return table


STEPS = _every_step({
    Step.MENU: StepEntry(_on_menu, _menu, back=Step.MENU),
    Step.CHOOSE_PROCEDURE: StepEntry(_on_choose_procedure, _every_procedure, back=Step.MENU),
    Step.REQUIREMENTS: StepEntry(_on_requirements, _requirements, back=Step.CHOOSE_PROCEDURE),
    Step.CHOOSE_AGENCY: StepEntry(_on_choose_agency, _agency_choice, back=Step.REQUIREMENTS,
                                  takes_location=True),
    Step.NAME: StepEntry(_on_name, _name_prompt, back=Step.REQUIREMENTS),
    Step.PHONE: StepEntry(_on_phone, _phone_prompt, back=Step.NAME),
    Step.DOCUMENTS: StepEntry(_on_documents, _document_prompt, back=_back_from_documents),
    Step.REVIEW: StepEntry(_on_review, _review_reply, back=_back_from_review),
    Step.LOOKUP: StepEntry(_on_lookup, _lookup_prompt, back=Step.MENU),
    Step.SUPPLEMENT: StepEntry(_on_supplement, _supplement_prompt, back=Step.MENU),
    Step.SUPPLEMENT_REVIEW: StepEntry(_on_supplement_review, _supplement_review, back=Step.MENU),
    Step.RATING_COMMENT: StepEntry(_on_rating_comment, _rating_comment_prompt, back=Step.MENU),
    Step.FEEDBACK: StepEntry(_on_feedback, _feedback_prompt, back=Step.MENU),
    Step.REPLY_DESK: StepEntry(_on_reply_desk, _reply_desk_prompt, back=Step.MENU),
})  # fmt: skip
