"""Every user-facing sentence comes from `templates/messages/`, rendered here.

Files are TOML, one per topic (`status.toml`, `sms.toml`, ...). Each table is a message key whose
values are the languages, Vietnamese first::

    [accepted]
    vi = "<Vietnamese sentence with {code}>"
    en = "Dossier {code} accepted"

`render("status.accepted", "en", code=...)`. Dates and datetimes are shown the Vietnamese way
(dd/mm/yyyy) unless the placeholder gives its own format (`{when:%H:%M}`).
"""

from __future__ import annotations

import string
import tomllib
import unicodedata
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

MESSAGES_DIR = Path(__file__).resolve().parent.parent / "templates" / "messages"
LANGUAGES = ("vi", "en")
DEFAULT_LANGUAGE = "vi"


class _Formatter(string.Formatter):
    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, datetime) and not format_spec:
            return value.strftime("%H:%M %d/%m/%Y")
        if isinstance(value, date) and not format_spec:
            return value.strftime("%d/%m/%Y")
        return super().format_field(value, format_spec)


_FORMATTER = _Formatter()


@lru_cache(maxsize=4)
def load_messages(directory: Path = MESSAGES_DIR) -> dict[str, dict[str, str]]:
    """All message keys of a directory: `{"topic.key": {"vi": ..., "en": ...}}`."""
    messages: dict[str, dict[str, str]] = {}
    for path in sorted(directory.glob("*.toml")):
        with path.open("rb") as handle:
            data = tomllib.load(handle)
        _collect(path.stem, data, messages, path)
    return messages


def _collect(
    prefix: str, table: dict[str, Any], out: dict[str, dict[str, str]], path: Path
) -> None:
    for name, value in table.items():
        if not isinstance(value, dict):
            raise ValueError(f"{path}: '{prefix}.{name}' must be a table of languages")
        if "vi" in value:
            out[f"{prefix}.{name}"] = {lang: str(text) for lang, text in value.items()}
        else:
            _collect(f"{prefix}.{name}", value, out, path)


def has_message(key: str) -> bool:
    return key in load_messages()


def render(key: str, lang: str = DEFAULT_LANGUAGE, /, **values: Any) -> str:
    """The sentence for `key` in `lang` (Vietnamese when that language lacks it)."""
    texts = load_messages()[key]
    template = texts.get(lang) or texts[DEFAULT_LANGUAGE]
    if not values:  # most labels have no placeholders: skip the formatter on hot pages
        return template
    return _FORMATTER.vformat(template, (), values)


def strip_diacritics(text: str) -> str:
    """Unaccented Vietnamese (for SMS and search): 'Đã tiếp nhận' → 'Da tiep nhan'."""
    text = text.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
