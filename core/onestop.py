"""The province's one-stop information system (Hệ thống thông tin một cửa điện tử), as data in and
out: what a dossier looks like on its wire, how its status comes back, and which agency talks to
which system how.

Every province's system names things a little differently, so the field names, the way statuses
and dates are written, and each agency's connection are data files (`data/onestop/`), validated at
load; the transport is `bots/onestop.py`. Only the fields a procedure needs leave the product
(Decree 13/2023: minimum necessary personal data): an empty value is not sent at all.
See docs/onestop.md.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from core.calendar import VN_TZ, to_local
from core.catalog import Procedure
from core.dossier import (
    NATIONAL_STATUS_CODE,
    RUNNING,
    Action,
    Actor,
    Command,
    DossierFacts,
    MissingItem,
    Status,
)
from core.messages import render

CHANNEL_ONLINE = "2"  # KenhThucHien: 1 counter, 2 online, 3 postal
OWNER_CITIZEN = "1"  # LoaiDoiTuong: 1 citizen, 2 business, 3 state agency, 4 other
ID_KINDS = {12: "1", 9: "2"}  # LoaiDinhDanh by length: 12-digit CCCD, 9-digit CMND
STATUS_FORMATS = ("code", "number", "name")  # "4", 4, "processing"
FORWARD_ON = ("accept", "forward")
TEXT_LIMIT = 2000  # any text of an incoming message
CODE_LIMIT = 64  # a dossier code (Dossier.official_code is 64 wide)
MISSING_LIMIT = 100  # items of one supplement request

# ---------------------------------------------------------------------------- errors


class OnestopConfigError(ValueError):
    """A mapping or connection file (or the env defaults) is wrong; the message says where."""


class OnestopError(ValueError):
    """A message of the one-stop system cannot be read; `message(lang)` says why, in plain words
    for the province's integrator. Nothing is changed by such a message."""

    def __init__(self, reason: str, **values: Any) -> None:
        self.reason = reason
        self.values = values
        super().__init__(render(f"onestop.{reason}", "en", **values))

    def message(self, lang: str = "vi") -> str:
        return render(f"onestop.{self.reason}", lang, **self.values)


# ---------------------------------------------------------------------------- the mapping

# The canonical names of each section of a mapping file; each maps to the name on the wire
# ("" = never sent / never read).
SECTIONS: dict[str, tuple[str, ...]] = {
    "dossier": (
        "code", "procedure_code", "procedure_name", "field_code", "field_name", "channel",
        "owner_name", "owner_kind", "phone", "email", "ids", "summary", "submitted_at",
        "received_at", "appointment_date", "status", "files", "fees", "supplements",
    ),
    "id": ("kind", "number"),
    "file": ("file_id", "name", "deleted", "component_code", "url"),
    "fee": ("name", "code", "method", "amount", "kind"),
    "supplement": (
        "round_id", "requested_by", "content", "requested_at", "received_by", "received_at",
        "documents", "old_appointment_date", "new_appointment_date",
    ),
    "supplement_document": ("component_code", "reason"),
    "progress": (
        "code", "handler", "title", "at", "department", "content", "status", "start",
        "legal_end",
    ),
    "callback": (
        "code", "status", "appointment_date", "content", "handler", "missing", "fee", "reason",
    ),
    "callback_missing": ("component_code", "reason"),
}  # fmt: skip
_TOP_LEVEL = {"date_format", "day_time", "status_format", "status_names", *SECTIONS}
_PROBE = datetime(2026, 12, 31, 23, 59, 58)  # a moment every date format must keep


@dataclass(frozen=True)
class FieldMapping:
    """How one one-stop system spells things (`data/onestop/national.toml` is the national set)."""

    source: str
    date_format: str  # strftime form, in Asia/Ho_Chi_Minh ("%Y%m%d%H%M%S" = yyyyMMddHHmmss)
    day_time: time  # the time written with a date-only value (an appointment date)
    status_format: str  # how statuses are written: one of STATUS_FORMATS
    status_names: Mapping[str, int]  # the string forms, read in any format ("processing" → 4)
    sections: Mapping[str, Mapping[str, str]]  # section → canonical name → wire name

    def name(self, section: str, canonical: str) -> str:
        return self.sections[section][canonical]

    def write_status(self, status: Status | int) -> str | int:
        number = NATIONAL_STATUS_CODE[status] if isinstance(status, Status) else status
        if self.status_format == "number":
            return number
        if self.status_format == "name":
            return next(n for n, v in self.status_names.items() if v == number)
        return str(number)

    def write_moment(self, moment: datetime | None) -> str | None:
        return to_local(moment).strftime(self.date_format) if moment else None

    def write_day(self, day: date | None) -> str | None:
        if day is None:
            return None
        return datetime.combine(day, self.day_time, VN_TZ).strftime(self.date_format)

    def read_moment(self, text: str) -> datetime:
        """A local date-time of the wire as an aware moment; ValueError when it is not one."""
        return datetime.strptime(text.strip(), self.date_format).replace(tzinfo=VN_TZ)


def load_mapping(path: Path) -> FieldMapping:
    """The mapping file, validated: every section with every canonical name, nothing else."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise OnestopConfigError(f"{path}: not valid TOML: {error}") from None
    except OSError as error:
        raise OnestopConfigError(f"{path}: cannot be read: {error.strerror}") from None
    return parse_mapping(data, str(path))


def parse_mapping(data: dict[str, Any], source: str) -> FieldMapping:
    problems: list[str] = []
    for key in sorted(set(data) - _TOP_LEVEL):
        problems.append(f"{key}: unknown key")
    for key in sorted(_TOP_LEVEL - set(data)):
        problems.append(f"{key}: is required")
    sections = {
        name: _section(data.get(name), name, canonical, problems)
        for name, canonical in SECTIONS.items()
    }
    date_format = _date_format(data.get("date_format"), problems)
    day_time = _day_time(data.get("day_time"), problems)
    status_format = data.get("status_format")
    if "status_format" in data and status_format not in STATUS_FORMATS:
        problems.append(
            f"status_format: {status_format!r} is not one of {', '.join(STATUS_FORMATS)}"
        )
    names = _status_names(data.get("status_names"), problems)
    if problems:
        raise OnestopConfigError(f"{source}:\n" + "\n".join(f"- {p}" for p in problems))
    return FieldMapping(source, date_format, day_time, str(status_format), names, sections)


def _section(
    table: Any, where: str, canonical: tuple[str, ...], problems: list[str]
) -> dict[str, str]:
    if table is None:
        return {}
    if not isinstance(table, dict):
        problems.append(f"{where}: must be a table")
        return {}
    for key in sorted(set(table) - set(canonical)):
        problems.append(f"{where}.{key}: unknown field")
    for key in [k for k in canonical if k not in table]:
        problems.append(f'{where}.{key}: is required ("" if the system has no such field)')
    names = {k: v for k, v in table.items() if k in canonical}
    for key, value in names.items():
        if not isinstance(value, str):
            problems.append(f"{where}.{key}: must be text")
    used = [v for v in names.values() if isinstance(v, str) and v]
    for twice in sorted({v for v in used if used.count(v) > 1}):
        problems.append(f"{where}: {twice!r} names two fields")
    return {k: str(v) for k, v in names.items()}


def _date_format(value: Any, problems: list[str]) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or not value:
        problems.append('date_format: must be a strftime format like "%Y%m%d%H%M%S"')
        return ""
    try:
        again = datetime.strptime(_PROBE.strftime(value), value)
    except ValueError:
        again = None
    if again is None or again.date() != _PROBE.date():
        problems.append(f"date_format: {value!r} does not write and read back a date")
    return value


def _day_time(value: Any, problems: list[str]) -> time:
    if value is None:
        return time(0)
    if not isinstance(value, str) or not re.fullmatch(r"\d\d:\d\d", value):
        problems.append('day_time: must be a time like "17:00"')
        return time(0)
    try:
        return time.fromisoformat(value)
    except ValueError:
        problems.append(f"day_time: {value!r} is not a time of day")
        return time(0)


def _status_names(table: Any, problems: list[str]) -> dict[str, int]:
    if table is None:
        return {}
    if not isinstance(table, dict):
        problems.append("status_names: must be a table name = code")
        return {}
    names: dict[str, int] = {}
    for name, number in table.items():
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 10:
            problems.append(f"status_names.{name}: must be a status code 1–10")
            continue
        names[name.strip().lower()] = number
    for number in sorted(set(range(1, 11)) - set(names.values())):
        problems.append(f"status_names: no name for status {number}")
    return names


# ---------------------------------------------------------------------------- what leaves


@dataclass(frozen=True)
class FileRef:
    """One stored file of a document component (TaiLieuNop), fetchable by a signed URL."""

    component_code: str  # the national MaThanhPhanHoSo (DocumentComponent.national_code)
    file_id: str
    name: str
    url: str  # signed and expiring, never a public path


@dataclass(frozen=True)
class Fee:
    """Phí, lệ phí (DanhSachLePhi)."""

    name: str
    amount_vnd: int
    code: str = ""
    method: str = ""  # HinhThucThu, as the system codes it
    kind: str = ""  # LoaiPhiLePhi


@dataclass(frozen=True)
class SupplementRound:
    """One supplement round (DanhSachHoSoBoSung): what was asked, and the appointment it moved."""

    round_id: str
    requested_by: str
    content: str
    requested_at: datetime
    missing: tuple[tuple[str, str], ...] = ()  # (national component code, reason)
    old_appointment_date: date | None = None
    new_appointment_date: date | None = None
    received_at: datetime | None = None  # when the citizen's supplement came in
    received_by: str = ""


@dataclass(frozen=True)
class DossierSnapshot:
    """A dossier as the one-stop system receives it (DongBoHoSoMC)."""

    code: str
    procedure_code: str  # the national MaTTHC (Procedure.code)
    procedure_name: str
    field_name: str
    owner_name: str
    status: Status
    official_code: str | None = None  # once the system gave one, it names the dossier
    field_code: str = ""
    phone: str = ""
    email: str = ""
    id_number: str | None = None
    summary: str = ""
    submitted_at: datetime | None = None
    received_at: datetime | None = None
    appointment_date: date | None = None
    files: tuple[FileRef, ...] = ()
    fees: tuple[Fee, ...] = ()
    supplements: tuple[SupplementRound, ...] = ()


@dataclass(frozen=True)
class ProgressStep:
    """One processing step (CapNhatTienDoHoSoMC): who did what, when, and the status after it."""

    code: str  # the dossier's code on the system (its official code once known)
    handler: str
    at: datetime
    content: str
    status: Status
    title: str = ""  # ChucDanh
    department: str = ""
    start: datetime | None = None
    legal_end: date | None = None  # the end date the law sets for this step


def _present(names: Mapping[str, str], values: Mapping[str, Any]) -> dict[str, Any]:
    """Wire name → value for the values that exist and the fields the system has."""
    return {
        names[key]: value
        for key, value in values.items()
        if names[key] and value is not None and value != "" and value != []
    }


def dossier_item(snapshot: DossierSnapshot, mapping: FieldMapping) -> dict[str, Any]:
    """The `data` item of DongBoHoSoMC."""
    if snapshot.status is Status.DRAFT:
        raise ValueError("a draft never leaves the gateway")
    ids = []
    number = (snapshot.id_number or "").strip()
    if number.isdigit() and len(number) in ID_KINDS:
        ids = [_present(mapping.sections["id"], {"kind": ID_KINDS[len(number)], "number": number})]
    moment, day = mapping.write_moment, mapping.write_day
    return _present(
        mapping.sections["dossier"],
        {
            "code": snapshot.official_code or snapshot.code,
            "procedure_code": snapshot.procedure_code,
            "procedure_name": snapshot.procedure_name,
            "field_code": snapshot.field_code,
            "field_name": snapshot.field_name,
            "channel": CHANNEL_ONLINE,
            "owner_name": snapshot.owner_name,
            "owner_kind": OWNER_CITIZEN,
            "phone": snapshot.phone,
            "email": snapshot.email,
            "ids": ids,
            "summary": snapshot.summary,
            "submitted_at": moment(snapshot.submitted_at),
            "received_at": moment(snapshot.received_at),
            "appointment_date": day(snapshot.appointment_date),
            "status": mapping.write_status(snapshot.status),
            "files": [_file_entry(f, mapping) for f in snapshot.files],
            "fees": [_fee_entry(f, mapping) for f in snapshot.fees],
            "supplements": [supplement_entry(s, mapping) for s in snapshot.supplements],
        },
    )


def _file_entry(file: FileRef, mapping: FieldMapping) -> dict[str, Any]:
    return _present(
        mapping.sections["file"],
        {
            "file_id": file.file_id,
            "name": file.name,
            "deleted": "False",
            "component_code": file.component_code,
            "url": file.url,
        },
    )


def _fee_entry(fee: Fee, mapping: FieldMapping) -> dict[str, Any]:
    values = {"name": fee.name, "code": fee.code, "method": fee.method, "amount": fee.amount_vnd,
              "kind": fee.kind}  # fmt: skip
    return _present(mapping.sections["fee"], values)


def supplement_entry(round_: SupplementRound, mapping: FieldMapping) -> dict[str, Any]:
    """One DanhSachHoSoBoSung entry, with the appointment date before and after the round."""
    names = mapping.sections["supplement"]
    documents = [
        _present(
            mapping.sections["supplement_document"], {"component_code": code, "reason": reason}
        )
        for code, reason in round_.missing
    ]
    moment, day = mapping.write_moment, mapping.write_day
    return _present(
        names,
        {
            "round_id": round_.round_id,
            "requested_by": round_.requested_by,
            "content": round_.content,
            "requested_at": moment(round_.requested_at),
            "received_by": round_.received_by,
            "received_at": moment(round_.received_at),
            "documents": documents,
            "old_appointment_date": day(round_.old_appointment_date),
            "new_appointment_date": day(round_.new_appointment_date),
        },
    )


def progress_item(step: ProgressStep, mapping: FieldMapping) -> dict[str, Any]:
    """One `data` item of CapNhatTienDoHoSoMC."""
    return _present(
        mapping.sections["progress"],
        {
            "code": step.code,
            "handler": step.handler,
            "title": step.title,
            "at": mapping.write_moment(step.at),
            "department": step.department,
            "content": step.content,
            "status": mapping.write_status(step.status),
            "start": mapping.write_moment(step.start),
            "legal_end": mapping.write_day(step.legal_end),
        },
    )


# ---------------------------------------------------------------------------- what comes back


def parse_status(value: Any, mapping: FieldMapping) -> int | None:
    """A national status 1–10 from a code, a number or a string form; None when it is none."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 1 <= value <= 10 else None
    if not isinstance(value, str) or len(value) > 32:
        return None
    text = value.strip().lower()
    if text.isdigit():
        return int(text) if 1 <= int(text) <= 10 else None
    return mapping.status_names.get(text)


@dataclass(frozen=True)
class StatusReport:
    """What the one-stop system says about one dossier (a callback, or a lookup's answer)."""

    code: str  # either of the dossier's codes
    status: int  # national status 1–10
    appointment_date: date | None = None
    content: str = ""  # NoiDungXuLy
    handler: str = ""  # NguoiXuLy
    missing: tuple[tuple[str, str], ...] = ()  # (national component code, reason)
    fee_vnd: int | None = None  # status 6 (payment requested), 9 (fee to pay)
    reason: str = ""


def read_callback(body: Any, mapping: FieldMapping) -> StatusReport:
    """A callback body as a report, or `OnestopError` saying what is wrong with it."""
    names = mapping.sections["callback"]
    if not isinstance(body, dict):
        raise OnestopError("not_an_object")
    return StatusReport(
        code=_code(body, names["code"]),
        status=_status(body, names["status"], mapping),
        appointment_date=_day(body, names["appointment_date"], mapping),
        content=_text(body, names["content"]),
        handler=_text(body, names["handler"]),
        missing=_missing(body.get(names["missing"]), names["missing"], mapping),
        fee_vnd=_amount(body, names["fee"]),
        reason=_text(body, names["reason"]),
    )


def read_lookup(item: Any, mapping: FieldMapping) -> StatusReport:
    """A TraCuuHoSo answer (a dossier item) as a report: its code, status and appointment."""
    names = mapping.sections["dossier"]
    if not isinstance(item, dict):
        raise OnestopError("not_an_object")
    return StatusReport(
        code=_code(item, names["code"]),
        status=_status(item, names["status"], mapping),
        appointment_date=_day(item, names["appointment_date"], mapping),
    )


def _code(body: dict[str, Any], name: str) -> str:
    value = body.get(name) if name else None
    if value is None or (isinstance(value, str) and not value.strip()):
        raise OnestopError("field_missing", field=name)
    if not isinstance(value, str):
        raise OnestopError("field_invalid", field=name)
    if len(value.strip()) > CODE_LIMIT:
        raise OnestopError("field_too_long", field=name, limit=CODE_LIMIT)
    return value.strip()


def _status(body: dict[str, Any], name: str, mapping: FieldMapping) -> int:
    if not name or body.get(name) is None:
        raise OnestopError("field_missing", field=name)
    number = parse_status(body[name], mapping)
    if number is None:
        raise OnestopError("unknown_status", value=str(body[name])[:32])
    return number


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name) if name else None
    if value is None:
        return ""
    if not isinstance(value, str):
        raise OnestopError("field_invalid", field=name)
    if len(value) > TEXT_LIMIT:
        raise OnestopError("field_too_long", field=name, limit=TEXT_LIMIT)
    return value.strip()


def _day(body: dict[str, Any], name: str, mapping: FieldMapping) -> date | None:
    value = body.get(name) if name else None
    if value is None or value == "":
        return None
    example = datetime(2026, 12, 7, 17, 0).strftime(mapping.date_format)
    if not isinstance(value, str) or len(value) > 64:
        raise OnestopError("bad_date", field=name, format=example)
    try:
        return mapping.read_moment(value).date()
    except ValueError:
        raise OnestopError("bad_date", field=name, format=example) from None


def _amount(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name) if name else None
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 15:
        return int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**15:
        return value
    if isinstance(value, float) and value.is_integer() and 0 <= value < 10**15:
        return int(value)
    raise OnestopError("field_invalid", field=name)


def _missing(entries: Any, where: str, mapping: FieldMapping) -> tuple[tuple[str, str], ...]:
    """Items to supplement: entries {component, reason}, or bare component codes."""
    names = mapping.sections["callback_missing"]
    if entries is None or not where:
        return ()
    if not isinstance(entries, list) or len(entries) > MISSING_LIMIT:
        raise OnestopError("field_invalid", field=where)
    items = []
    for entry in entries:
        if isinstance(entry, str):
            entry = {names["component_code"]: entry}
        if not isinstance(entry, dict):
            raise OnestopError("field_invalid", field=where)
        component = _text(entry, names["component_code"])
        if not component:
            raise OnestopError("field_missing", field=f"{where}.{names['component_code']}")
        items.append((component, _text(entry, names["reason"])))
    return tuple(items)


_ACTIONS: dict[int, Action] = {
    3: Action.REFUSE,
    4: Action.FORWARD,
    5: Action.REQUEST_SUPPLEMENT,
    7: Action.WITHDRAW,
    8: Action.STOP,
    9: Action.RESULT_READY,
    10: Action.RETURN_RESULT,
}  # 1, 2 are the desk's own steps; 6 (payment requested) has no state of ours yet


def command_for(
    report: StatusReport, facts: DossierFacts, procedure: Procedure, *, at: datetime
) -> Command | None:
    """The one step this report asks of the state machine, or None when it changes nothing.

    The command goes through `core.dossier.decide` like a desk step, so a status the machine does
    not allow now (9 before 4 after a refusal, …) is its refusal, not a crash. A report may need
    two steps (4 with a later appointment on an accepted dossier: forward, then extend): apply
    the first and ask again with the new facts until None."""
    reason = report.reason or report.content
    if report.status != NATIONAL_STATUS_CODE[facts.status]:
        action = _ACTIONS.get(report.status)
        if action is None:
            return None
        missing = tuple(
            MissingItem(_our_component(code, procedure), item_reason or reason)
            for code, item_reason in report.missing
        )
        return Command(action, Actor.ONESTOP, at, reason=reason, missing=missing)
    new_date, due = report.appointment_date, facts.appointment_date
    later = new_date is not None and (due is None or new_date > due)
    if later and facts.status in RUNNING:
        return Command(
            Action.EXTEND,
            Actor.ONESTOP,
            at,
            reason=reason,
            new_appointment_date=report.appointment_date,
        )
    return None


def _our_component(national: str, procedure: Procedure) -> str:
    """Our component code for a national MaThanhPhanHoSo (unknown: as given, and the state
    machine says it is not a component of this procedure)."""
    for component in procedure.components:
        if national in (component.national_code, component.code):
            return component.code
    return national


# ---------------------------------------------------------------------------- callback signature


def sign_callback(secret: str, timestamp: str, body: bytes) -> str:
    """X-Onestop-Signature: "sha256=" + hex HMAC-SHA256 of "<timestamp>.<raw body>"."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_callback(
    secret: str,
    timestamp_header: str | None,
    signature_header: str | None,
    body: bytes,
    now: datetime,
    window: timedelta = timedelta(seconds=300),
) -> bool:
    """True when the signature is the secret's over this timestamp and body, and the timestamp
    (Unix seconds) is within `window` of `now` either way: stale and future messages are refused."""
    stamp = (timestamp_header or "").strip()
    if not secret or not re.fullmatch(r"\d{1,12}", stamp):
        return False
    sent_at = datetime.fromtimestamp(int(stamp), UTC)
    if abs(now - sent_at) > window:
        return False
    given = (signature_header or "").strip().lower()
    return hmac.compare_digest(sign_callback(secret, stamp, body), given)


# ---------------------------------------------------------------------------- connections

CLIENT_SECRET_ENV = "ONESTOP_CLIENT_SECRET"
CALLBACK_SECRET_ENV = "ONESTOP_CALLBACK_SECRET"


@dataclass(frozen=True)
class ClientCredentials:
    """OAuth2 client credentials (the LGSP form): the secret is read from `client_secret_env`."""

    token_url: str
    client_id: str
    client_secret_env: str = CLIENT_SECRET_ENV


@dataclass(frozen=True)
class SessionLogin:
    """The national sync adapter's session login: `POST {adapter_url}/{auth_path}`, then every
    service through `POST {adapter_url}/{integration_path}`."""

    adapter_url: str
    auth_path: str
    integration_path: str
    username: str
    password_env: str
    dstcode: str


@dataclass(frozen=True)
class Connection:
    """How the gateway talks to one agency's one-stop system."""

    agency: str
    base_url: str  # the REST services' base ("" for the session form)
    auth: ClientCredentials | SessionLogin
    unit: str  # MaDinhDanhDV / madonvi: the receiving agency's identifier on the system
    mapping: FieldMapping
    forward_on: str = "accept"  # send the dossier when accepted, or when the desk forwards it
    callback_secret_env: str = CALLBACK_SECRET_ENV


@dataclass(frozen=True)
class ConnectionDefaults:
    """What the environment says (ONESTOP_*): the connection of every agency the file does not
    name, when ONESTOP_BASE_URL is set."""

    mapping: Path
    base_url: str | None = None
    token_url: str | None = None  # default {base_url}/token
    client_id: str | None = None


@dataclass(frozen=True)
class Connections:
    """Each agency's connection; `get` answers None for an agency without a one-stop system."""

    agencies: Mapping[str, Connection] = field(default_factory=dict)
    disabled: frozenset[str] = frozenset()
    default: Connection | None = None  # agency and unit filled in by `get`

    def get(self, agency: str) -> Connection | None:
        if agency in self.agencies:
            return self.agencies[agency]
        if agency in self.disabled or self.default is None:
            return None
        return replace(self.default, agency=agency, unit=agency)


_AGENCY_KEYS = {"enabled", "base_url", "unit", "mapping", "forward_on", "callback_secret_env",
                "auth"}  # fmt: skip
_AUTH_KEYS = {
    "client_credentials": {"kind", "token_url", "client_id", "client_secret_env"},
    "session": {"kind", "adapter_url", "auth_path", "integration_path", "username",
                "password_env", "dstcode"},
}  # fmt: skip
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


def load_connections(path: Path | None, defaults: ConnectionDefaults) -> Connections:
    """The agencies file (`[agencies."<code>"]` tables) over the env defaults. No file and no
    ONESTOP_BASE_URL: no connection at all (forwarding stays a step recorded by hand)."""
    mappings: dict[Path, FieldMapping] = {}

    def mapping_at(mapping_path: Path) -> FieldMapping:
        if mapping_path not in mappings:
            mappings[mapping_path] = load_mapping(mapping_path)
        return mappings[mapping_path]

    default = _default_connection(defaults, mapping_at)
    if path is None:
        return Connections(default=default)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise OnestopConfigError(f"{path}: not valid TOML: {error}") from None
    except OSError as error:
        raise OnestopConfigError(f"{path}: cannot be read: {error.strerror}") from None
    if set(data) - {"agencies"}:
        raise OnestopConfigError(f"{path}: unknown keys {sorted(set(data) - {'agencies'})}")
    tables = data.get("agencies", {})
    if not isinstance(tables, dict):
        raise OnestopConfigError(f'{path}: agencies must be tables [agencies."<code>"]')
    agencies, disabled = {}, set()
    for agency, table in tables.items():
        where = f'{path}: agencies."{agency}"'
        if not isinstance(table, dict):
            raise OnestopConfigError(f"{where}: must be a table")
        if table.get("enabled", True) is False:
            disabled.add(agency)
            continue
        agencies[agency] = _agency_connection(
            agency, table, defaults, path.parent, where, mapping_at
        )
    return Connections(agencies, frozenset(disabled), default)


def _default_connection(
    defaults: ConnectionDefaults, mapping_at: Callable[[Path], FieldMapping]
) -> Connection | None:
    if not defaults.base_url:
        return None
    if not defaults.client_id:
        raise OnestopConfigError("ONESTOP_BASE_URL is set: ONESTOP_CLIENT_ID is required too")
    base = defaults.base_url.rstrip("/")
    auth = ClientCredentials(defaults.token_url or f"{base}/token", defaults.client_id)
    return Connection("", base, auth, "", mapping_at(defaults.mapping))


def _agency_connection(
    agency: str,
    table: dict[str, Any],
    defaults: ConnectionDefaults,
    directory: Path,
    where: str,
    mapping_at: Callable[[Path], FieldMapping],
) -> Connection:
    unknown = set(table) - _AGENCY_KEYS
    if unknown:
        raise OnestopConfigError(f"{where}: unknown keys {sorted(unknown)}")
    for key in _AGENCY_KEYS - {"enabled", "auth"}:
        if key in table and not isinstance(table[key], str):
            raise OnestopConfigError(f"{where}.{key}: must be text")
    if table.get("enabled", True) is not True:
        raise OnestopConfigError(f"{where}.enabled: must be true or false")
    auth = _auth(table.get("auth"), defaults, where)
    base_url = str(table.get("base_url") or defaults.base_url or "").rstrip("/")
    if isinstance(auth, ClientCredentials) and not base_url:
        raise OnestopConfigError(f"{where}: base_url is required (ONESTOP_BASE_URL is not set)")
    forward_on = table.get("forward_on", "accept")
    if forward_on not in FORWARD_ON:
        raise OnestopConfigError(f"{where}.forward_on: must be one of {', '.join(FORWARD_ON)}")
    secret_env = table.get("callback_secret_env", CALLBACK_SECRET_ENV)
    _check_env_name(secret_env, f"{where}.callback_secret_env")
    mapping = directory / table["mapping"] if "mapping" in table else defaults.mapping
    return Connection(
        agency=agency,
        base_url=base_url,
        auth=auth,
        unit=table.get("unit") or agency,
        mapping=mapping_at(mapping),
        forward_on=forward_on,
        callback_secret_env=secret_env,
    )


def _auth(table: Any, defaults: ConnectionDefaults, where: str) -> ClientCredentials | SessionLogin:
    where = f"{where}.auth"
    if table is None:  # the env's client credentials
        if not defaults.client_id:
            raise OnestopConfigError(f"{where}: required (ONESTOP_CLIENT_ID is not set)")
        base = (defaults.base_url or "").rstrip("/")
        token_url = defaults.token_url or (f"{base}/token" if base else "")
        if not token_url:
            raise OnestopConfigError(f"{where}: required (ONESTOP_TOKEN_URL is not set)")
        return ClientCredentials(token_url, defaults.client_id)
    if not isinstance(table, dict) or table.get("kind") not in _AUTH_KEYS:
        raise OnestopConfigError(f"{where}.kind: must be one of {', '.join(_AUTH_KEYS)}")
    if {"client_secret", "password", "secret"} & set(table):
        raise OnestopConfigError(
            f"{where}: secrets go in the environment; name the variable (client_secret_env, "
            "password_env)"
        )
    allowed = _AUTH_KEYS[table["kind"]]
    if set(table) - allowed:
        raise OnestopConfigError(f"{where}: unknown keys {sorted(set(table) - allowed)}")
    for key in sorted(allowed - {"kind", "client_secret_env"}):
        if not isinstance(table.get(key), str) or not table[key].strip():
            raise OnestopConfigError(f"{where}.{key}: is required (text)")
    if table["kind"] == "session":
        _check_env_name(table["password_env"], f"{where}.password_env")
        return SessionLogin(
            adapter_url=table["adapter_url"].rstrip("/"),
            auth_path=table["auth_path"].strip("/"),
            integration_path=table["integration_path"].strip("/"),
            username=table["username"],
            password_env=table["password_env"],
            dstcode=table["dstcode"],
        )
    secret_env = table.get("client_secret_env", CLIENT_SECRET_ENV)
    _check_env_name(secret_env, f"{where}.client_secret_env")
    return ClientCredentials(table["token_url"], table["client_id"], secret_env)


def _check_env_name(value: Any, where: str) -> None:
    if not isinstance(value, str) or not _ENV_NAME.match(value):
        raise OnestopConfigError(
            f"{where}: must be the NAME of an environment variable (like ONESTOP_SECRET_H53); "
            "secrets never go in this file"
        )


# ---------------------------------------------------------------------------- file links


def file_signature(secret: str, file_id: str, expires: int) -> str:
    """The signature of a file link the one-stop system fetches (DuongDanTaiTepTin): it names
    one file until `expires` (Unix seconds), and nothing else."""
    message = f"onestop-file:{file_id}:{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def file_link_valid(secret: str, file_id: str, expires: str, signature: str, now: datetime) -> bool:
    """A file link as signed by `file_signature`, not yet expired."""
    if not re.fullmatch(r"\d{1,12}", expires) or int(expires) < now.timestamp():
        return False
    return hmac.compare_digest(file_signature(secret, file_id, int(expires)), signature)


def file_link(base_url: str, secret: str, file_id: str, expires: int) -> str:
    """The signed, expiring URL of one stored file (served by `GET /onestop/files/{id}`)."""
    signature = file_signature(secret, file_id, expires)
    return f"{base_url.rstrip('/')}/onestop/files/{file_id}?expires={expires}&signature={signature}"
