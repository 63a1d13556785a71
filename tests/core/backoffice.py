"""The dialogue's back office in memory, so a transcript runs without a database.

It implements `core.conversation.Backoffice` for one citizen and keeps what the dialogue hands it
in plain attributes for the test to read. What the desk does meanwhile (ask for a supplement,
return the result) is a method the test calls. The storage-backed transcripts in
`test_conversation.py` check the real back office; this one checks the dialogue alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from core.catalog import Catalog
from core.codes import format_code, parse_code
from core.conversation import Conversation, Submitted, SupplementRequest
from core.documents import CheckedDocument
from core.dossier import CLOSED, Status
from core.lookup import PublicStatus
from core.qr import lookup_url, qr_png

BASE_URL = "https://hcc.example.vn"
TODAY = date(2026, 12, 7)


@dataclass
class MemoryDossier:
    code: str
    procedure: str
    agency: str
    name: str = ""
    phone: str = ""
    status: Status = Status.SUBMITTED
    files: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    missing: tuple[tuple[str, str], ...] = ()  # (component code, reason) the desk asked for
    rating: tuple[int, str] | None = None  # stars, comment
    thread: list[str] = field(default_factory=list)  # what the citizen wrote to the desk


class MemoryBackoffice:
    """One citizen's back office: their dossiers, files, feedback and ratings, in memory."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.stored: dict[str, bytes] = {}  # media key → bytes
        self.dossiers: dict[str, MemoryDossier] = {}
        self.feedback_given: list[tuple[str, list[dict[str, Any]]]] = []  # text, files

    # --------------------------------------------------------------- what the desk does

    def add_dossier(self, procedure: str, agency: str) -> MemoryDossier:
        """A dossier received today, numbered per agency like the real codes."""
        sequence = 1 + sum(1 for d in self.dossiers.values() if d.agency == agency)
        dossier = MemoryDossier(format_code(agency, TODAY, sequence), procedure, agency)
        self.dossiers[dossier.code] = dossier
        return dossier

    def request_supplement(self, code: str, *missing: tuple[str, str]) -> None:
        dossier = self.dossiers[code]
        dossier.status, dossier.missing = Status.SUPPLEMENT_REQUESTED, missing

    def return_result(self, code: str) -> None:
        self.dossiers[code].status = Status.RETURNED

    # --------------------------------------------------------------- core.conversation.Backoffice

    def store_file(self, document: CheckedDocument) -> dict[str, Any]:
        sha256 = hashlib.sha256(document.data).hexdigest()
        self.stored[sha256] = document.data
        return {"key": sha256, "sha256": sha256, "size": len(document.data),
                "content_type": document.content_type}  # fmt: skip

    def submit(self, conversation: Conversation) -> Submitted:
        assert conversation.procedure and conversation.agency
        dossier = self.add_dossier(conversation.procedure, conversation.agency)
        dossier.name, dossier.phone = conversation.name, conversation.phone
        dossier.files = {k: list(v) for k, v in conversation.files.items()}
        url = lookup_url(BASE_URL, dossier.code)
        return Submitted(code=dossier.code, lookup_url=url, qr_png=qr_png(url))

    def lookup(self, text: str) -> PublicStatus | None:
        code = parse_code(text)
        dossier = self.dossiers.get(str(code)) if code else None
        return self._public(dossier) if dossier else None

    def my_dossiers(self) -> list[PublicStatus]:
        return [self._public(d) for d in self.dossiers.values()]

    def open_supplement(self) -> SupplementRequest | None:
        for d in self.dossiers.values():
            if d.status == Status.SUPPLEMENT_REQUESTED:
                return SupplementRequest(code=d.code, procedure=d.procedure, items=d.missing)
        return None

    def resubmit(self, conversation: Conversation) -> None:
        dossier = self.dossiers[conversation.supplement or ""]
        assert dossier.status == Status.SUPPLEMENT_REQUESTED
        dossier.status, dossier.missing = Status.RESUBMITTED, ()
        for component, files in conversation.files.items():
            dossier.files.setdefault(component, []).extend(files)

    def rate(self, code: str, stars: int) -> bool:
        dossier = self.dossiers.get(code)
        if dossier is None or dossier.status not in CLOSED - {Status.WITHDRAWN} or dossier.rating:
            return False
        dossier.rating = (stars, "")
        return True

    def comment_rating(self, code: str, comment: str) -> None:
        dossier = self.dossiers[code]
        assert dossier.rating is not None
        dossier.rating = (dossier.rating[0], comment)

    def feedback(self, text: str, files: list[dict[str, Any]]) -> None:
        self.feedback_given.append((text, files))

    def message_desk(self, code: str, text: str) -> bool:
        dossier = self.dossiers.get(code)
        if dossier is None or dossier.status in CLOSED:
            return False
        dossier.thread.append(text)
        return True

    def _public(self, d: MemoryDossier) -> PublicStatus:
        procedure, agency = self.catalog.procedure(d.procedure), self.catalog.agency(d.agency)
        return PublicStatus(d.code, procedure.name, agency.name, d.status, TODAY, None)
