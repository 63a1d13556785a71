"""The procedure catalog as data: the agency tree and the procedures with their document components.

Operators edit TOML files (`agencies.toml`, `procedures/<slug>.toml`); everything is validated
at load and every error names its file and field, so a typo never reaches a citizen.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.geo import Location, distance_km, location
from core.messages import strip_diacritics

AGENCY_KINDS = ("province", "provincial_centre", "department", "commune_centre")
DOCUMENT_KINDS = ("image", "pdf")
AGENCY_CODE = re.compile(r"^[A-Z0-9]{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}$")


@dataclass(frozen=True)
class Text:
    """A sentence in both languages, Vietnamese first."""

    vi: str
    en: str = ""

    def get(self, lang: str) -> str:
        return self.en if lang == "en" and self.en else self.vi


@dataclass(frozen=True)
class Agency:
    """Cơ quan / đơn vị: a node of the agency tree (province → centres, departments, communes)."""

    code: str  # mã định danh, also the prefix of the dossier codes it issues
    name: Text
    kind: str
    parent: str | None
    address: str = ""
    phone: str = ""
    location: Location | None = None  # where a citizen goes (latitude, longitude), if known


@dataclass(frozen=True)
class DocumentComponent:
    """Thành phần hồ sơ: one paper of a dossier, photographed as one or more files."""

    code: str
    name: Text
    required: bool = True
    min_files: int = 1
    max_files: int = 10
    accepted_kinds: tuple[str, ...] = DOCUMENT_KINDS
    bring_original: bool = False
    optional_with_id_number: bool = False  # in the national population database already
    hint: Text = Text("", "")
    national_code: str = ""  # MaThanhPhanHoSo in the one-stop system; empty = the same as code

    def __post_init__(self) -> None:
        if not self.national_code:
            object.__setattr__(self, "national_code", self.code)


@dataclass(frozen=True)
class Procedure:
    """Thủ tục hành chính."""

    code: str
    slug: str
    name: Text
    field: Text
    agency_kind: str
    processing_days: int
    same_day: bool
    fee_vnd: int
    fee_note: Text
    result: Text
    legal_basis: str
    service_level: int
    keywords: tuple[str, ...]
    components: tuple[DocumentComponent, ...]

    def component(self, code: str) -> DocumentComponent:
        for component in self.components:
            if component.code == code:
                return component
        raise KeyError(code)


@dataclass(frozen=True)
class Catalog:
    province: Agency
    agencies: Mapping[str, Agency]
    procedures: Mapping[str, Procedure]

    def agency(self, code: str) -> Agency:
        return self.agencies[code]

    def procedure(self, code: str) -> Procedure:
        return self.procedures[code]

    def procedure_by_slug(self, slug: str) -> Procedure:
        for procedure in self.procedures.values():
            if procedure.slug == slug:
                return procedure
        raise KeyError(slug)

    def children(self, agency_code: str) -> list[Agency]:
        return [a for a in self.agencies.values() if a.parent == agency_code]

    def receiving_agencies(self, procedure: Procedure) -> list[Agency]:
        return [a for a in self.agencies.values() if a.kind == procedure.agency_kind]

    def distances(self, procedure: Procedure, point: Location) -> dict[str, float]:
        """How far (km) each receiving agency with a known location is from `point`."""
        return {
            a.code: distance_km(point, a.location)
            for a in self.receiving_agencies(procedure)
            if a.location is not None
        }

    def search(self, text: str) -> list[Procedure]:
        """Procedures matching the words typed, with or without diacritics; best first. A longer
        message that names a procedure among other words finds it: one of its multi-word
        keywords, or its name, inside the text."""
        words = _words(text)
        if not words:
            return []
        scored = []
        for order, procedure in enumerate(self.procedures.values()):
            haystack = set(
                _words(" ".join([procedure.name.vi, procedure.name.en, procedure.field.vi]))
            ) | set(_words(" ".join(procedure.keywords)))
            hits = sum(1 for word in words if word in haystack)
            phrase = " ".join(words) in " ".join(_words(procedure.name.vi))
            mentions = [_words(k) for k in (*procedure.keywords, procedure.name.vi)]
            mentioned = any(len(m) > 1 and _inside(m, words) for m in mentions)
            if hits * 2 > len(words) or phrase or mentioned:
                scored.append((-(hits + 2 * phrase + 2 * mentioned), order, procedure))
        return [procedure for *_, procedure in sorted(scored, key=lambda s: s[:2])]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", strip_diacritics(text).lower())


def _inside(phrase: list[str], words: list[str]) -> bool:
    """`phrase` appears in `words` as consecutive words."""
    n = len(phrase)
    return any(words[i : i + n] == phrase for i in range(len(words) - n + 1))


class CatalogError(ValueError):
    """The catalog files are wrong; the message lists every problem with file and field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("catalog is invalid:\n" + "\n".join(f"- {p}" for p in problems))


class _Reader:
    """Reads TOML tables field by field, collecting problems instead of stopping at the first."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []

    def problem(self, where: str, message: str) -> None:
        self.problems.append(f"{self.source}: {where}: {message}")

    def fields(self, table: Any, where: str, allowed: set[str], required: set[str]) -> bool:
        if not isinstance(table, dict):
            self.problem(where, "must be a table")
            return False
        for key in sorted(set(table) - allowed):
            self.problem(f"{where}.{key}" if where else key, "unknown field")
        for key in sorted(required - set(table)):
            self.problem(f"{where}.{key}" if where else key, "is required")
        return True

    def get(self, table: dict[str, Any], key: str, kind: type, where: str, default: Any) -> Any:
        value = table.get(key, default)
        place = f"{where}.{key}" if where else key
        if kind is int and isinstance(value, bool):
            self.problem(place, "must be a whole number")
            return default
        if not isinstance(value, kind):
            self.problem(place, f"must be {_KIND_WORDS[kind]}")
            return default
        return value

    def text(self, table: dict[str, Any], key: str, where: str, required: bool = True) -> Text:
        value = table.get(key)
        place = f"{where}.{key}" if where else key
        if value is None and not required:
            return Text("", "")
        if not isinstance(value, dict) or not isinstance(value.get("vi"), str):
            self.problem(place, 'must be a table {vi = "...", en = "..."}')
            return Text("", "")
        if not value["vi"].strip() and required:
            self.problem(f"{place}.vi", "must not be empty")
        for key_ in sorted(set(value) - {"vi", "en"}):
            self.problem(f"{place}.{key_}", "unknown language (use vi, en)")
        return Text(value["vi"], str(value.get("en", "")))


_KIND_WORDS = {str: "text", int: "a whole number", bool: "true or false", list: "a list"}


def _load_toml(path: Path, reader: _Reader) -> dict[str, Any] | None:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        reader.problem("file", f"not valid TOML: {error}")
    except OSError as error:
        reader.problem("file", f"cannot be read: {error.strerror}")
    return None


_AGENCY_FIELDS = {"code", "name", "kind", "parent", "address", "phone", "location"}


def _read_agencies(path: Path, reader: _Reader) -> dict[str, Agency]:
    data = _load_toml(path, reader)
    agencies: dict[str, Agency] = {}
    if data is None:
        return agencies
    reader.fields(data, "", {"agency"}, {"agency"})
    rows = data.get("agency", [])
    if not isinstance(rows, list):
        reader.problem("agency", "must be a list of [[agency]] tables")
        return agencies
    for index, row in enumerate(rows):
        where = f"agency[{index}]"
        if not reader.fields(row, where, _AGENCY_FIELDS, {"code", "name", "kind"}):
            continue
        code = reader.get(row, "code", str, where, "")
        if code and not AGENCY_CODE.match(code):
            reader.problem(f"{where}.code", f"'{code}' is not an identifier like 000.00.10.H53")
        if code in agencies:
            reader.problem(f"{where}.code", f"'{code}' is used twice")
        kind = reader.get(row, "kind", str, where, "")
        if kind and kind not in AGENCY_KINDS:
            reader.problem(f"{where}.kind", f"'{kind}' is not one of {', '.join(AGENCY_KINDS)}")
        agencies[code] = Agency(
            code=code,
            name=reader.text(row, "name", where),
            kind=kind,
            parent=row.get("parent"),
            address=reader.get(row, "address", str, where, ""),
            phone=reader.get(row, "phone", str, where, ""),
            location=_read_location(row, where, reader),
        )
    roots = [a for a in agencies.values() if a.parent is None]
    if len(roots) != 1 or roots[0].kind != "province":
        reader.problem("agency", "exactly one agency of kind 'province' must have no parent")
    for index, agency in enumerate(agencies.values()):
        if agency.parent is not None and agency.parent not in agencies:
            reader.problem(f"agency[{index}].parent", f"'{agency.parent}' is not a known agency")
    for agency in agencies.values():  # every chain of parents must reach the root
        seen, current = set(), agency
        while current.parent is not None and current.parent in agencies:
            if current.code in seen:
                reader.problem("agency", f"'{agency.code}' is part of a parent cycle")
                break
            seen.add(current.code)
            current = agencies[current.parent]
    return agencies


def _read_location(row: dict[str, Any], where: str, reader: _Reader) -> Location | None:
    """`location = [latitude, longitude]`, in degrees (optional)."""
    value = row.get("location")
    if value is None:
        return None
    point = None
    if isinstance(value, list) and len(value) == 2 and not any(isinstance(v, str) for v in value):
        point = location(*value)
    if point is None:
        reader.problem(f"{where}.location", "must be [latitude, longitude] in degrees")
    return point


_PROCEDURE_FIELDS = {
    "code", "name", "field", "agency_kind", "processing_days", "same_day", "fee_vnd",
    "fee_note", "result", "legal_basis", "service_level", "keywords", "component",
}  # fmt: skip
_COMPONENT_FIELDS = {
    "code", "name", "required", "min_files", "max_files", "accepted_kinds", "bring_original",
    "optional_with_id_number", "hint", "national_code",
}  # fmt: skip


def _read_procedure(path: Path, reader: _Reader) -> Procedure | None:
    data = _load_toml(path, reader)
    if data is None:
        return None
    required = {"code", "name", "field", "agency_kind", "processing_days", "component"}
    if not reader.fields(data, "", _PROCEDURE_FIELDS, required):
        return None
    days = reader.get(data, "processing_days", int, "", 0)
    same_day = reader.get(data, "same_day", bool, "", False)
    if days < 0:
        reader.problem("processing_days", "must be ≥ 0")
    if same_day != (days == 0):
        reader.problem("same_day", "must be true exactly when processing_days is 0")
    fee = reader.get(data, "fee_vnd", int, "", 0)
    if fee < 0:
        reader.problem("fee_vnd", "must be ≥ 0")
    level = reader.get(data, "service_level", int, "", 3)
    if level not in (3, 4):
        reader.problem("service_level", "must be 3 or 4")
    kind = reader.get(data, "agency_kind", str, "", "")
    if kind and kind not in AGENCY_KINDS:
        reader.problem("agency_kind", f"'{kind}' is not one of {', '.join(AGENCY_KINDS)}")
    keywords = reader.get(data, "keywords", list, "", [])
    components = _read_components(data.get("component"), reader)
    return Procedure(
        code=reader.get(data, "code", str, "", ""),
        slug=path.stem,
        name=reader.text(data, "name", ""),
        field=reader.text(data, "field", ""),
        agency_kind=kind,
        processing_days=days,
        same_day=same_day,
        fee_vnd=fee,
        fee_note=reader.text(data, "fee_note", "", required=False),
        result=reader.text(data, "result", "", required=False),
        legal_basis=reader.get(data, "legal_basis", str, "", ""),
        service_level=level,
        keywords=tuple(str(k) for k in keywords),
        components=components,
    )


def _read_components(rows: Any, reader: _Reader) -> tuple[DocumentComponent, ...]:
    if not isinstance(rows, list) or not rows:
        reader.problem("component", "at least one [[component]] is required")
        return ()
    components: list[DocumentComponent] = []
    for index, row in enumerate(rows):
        where = f"component[{index}]"
        if not reader.fields(row, where, _COMPONENT_FIELDS, {"code", "name"}):
            continue
        code = reader.get(row, "code", str, where, "")
        if any(c.code == code for c in components):
            reader.problem(f"{where}.code", f"'{code}' is used twice in this procedure")
        required = reader.get(row, "required", bool, where, True)
        min_files = reader.get(row, "min_files", int, where, 1 if required else 0)
        max_files = reader.get(row, "max_files", int, where, 10)
        if required and min_files < 1:
            reader.problem(f"{where}.min_files", "must be ≥ 1 for a required component")
        if min_files > max_files:
            reader.problem(f"{where}.max_files", f"must be ≥ min_files ({min_files})")
        kinds = reader.get(row, "accepted_kinds", list, where, list(DOCUMENT_KINDS))
        for bad in [k for k in kinds if k not in DOCUMENT_KINDS]:
            reader.problem(f"{where}.accepted_kinds", f"'{bad}' is not one of image, pdf")
        components.append(
            DocumentComponent(
                code=code,
                name=reader.text(row, "name", where),
                required=required,
                min_files=min_files,
                max_files=max_files,
                accepted_kinds=tuple(kinds),
                bring_original=reader.get(row, "bring_original", bool, where, False),
                optional_with_id_number=reader.get(
                    row, "optional_with_id_number", bool, where, False
                ),
                hint=reader.text(row, "hint", where, required=False),
                national_code=reader.get(row, "national_code", str, where, ""),
            )
        )
    return tuple(components)


def load_catalog(directory: Path) -> Catalog:
    """Load and validate `agencies.toml` and `procedures/*.toml`; raise one CatalogError."""
    problems: list[str] = []
    reader = _Reader("agencies.toml")
    agencies = _read_agencies(directory / "agencies.toml", reader)
    problems += reader.problems
    procedures: dict[str, Procedure] = {}
    files = sorted((directory / "procedures").glob("*.toml"))
    if not files:
        problems.append("procedures/: no procedure files (*.toml)")
    for path in files:
        reader = _Reader(f"procedures/{path.name}")
        procedure = _read_procedure(path, reader)
        if procedure is not None:
            if procedure.code in procedures:
                reader.problem("code", f"'{procedure.code}' is used by another procedure too")
            kinds = {a.kind for a in agencies.values()}
            if procedure.agency_kind and procedure.agency_kind not in kinds:
                reader.problem("agency_kind", f"no agency of kind '{procedure.agency_kind}'")
            procedures[procedure.code] = procedure
        problems += reader.problems
    if problems:
        raise CatalogError(problems)
    province = next(a for a in agencies.values() if a.parent is None)
    return Catalog(province=province, agencies=agencies, procedures=procedures)


def check_file(path: Path) -> list[str]:
    """Validate one operator file (agencies.toml or a procedure file); [] when it is valid."""
    reader = _Reader(path.name)
    if path.name == "agencies.toml":
        _read_agencies(path, reader)
    else:
        _read_procedure(path, reader)
    return reader.problems
