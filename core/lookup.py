"""Status by code: what anyone holding a dossier code may see (Tây Ninh Art. 10.4).

Processing status only — never a name, phone, address or photo (Quảng Ngãi Art. 10.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from core.catalog import Text
from core.dossier import NATIONAL_STATUS_CODE, Status
from core.messages import render


@dataclass(frozen=True)
class PublicStatus:
    code: str
    procedure: Text
    agency: Text
    status: Status
    submitted_on: date
    appointment_date: date | None
    official_code: str | None = None  # the one-stop system's code, once it gave one

    @property
    def national_status_code(self) -> int:
        return NATIONAL_STATUS_CODE[self.status]

    def status_text(self, lang: str = "vi") -> str:
        return render(f"status.{self.status.value}", lang)

    def next_step(self, lang: str = "vi") -> str:
        return render(f"next_step.{self.status.value}", lang)

    def as_json(self, lang: str = "vi") -> dict[str, Any]:
        return {
            "code": self.code,
            "official_code": self.official_code,
            "procedure": self.procedure.get(lang),
            "agency": self.agency.get(lang),
            "status": self.status.value,
            "status_text": self.status_text(lang),
            "national_status_code": self.national_status_code,
            "submitted_on": self.submitted_on.isoformat(),
            "appointment_date": self.appointment_date.isoformat()
            if self.appointment_date
            else None,
            "next_step": self.next_step(lang),
        }
