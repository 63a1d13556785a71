"""What a chat channel sends: a text with buttons, an image, a request for the phone number or
the location.

Both the dialogue's live answers (`core.conversation`) and the outbox notices (`core.notices`)
are `Reply`s, so one sender per channel turns either into that channel's messages.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Button:
    label: str
    data: str


@dataclass(frozen=True)
class Reply:
    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    image_png: bytes | None = None
    ask_contact: bool = False  # show the channel's "share my phone number" button
    ask_location: bool = False  # offer the channel's "send my location" button, if it has one


def split_text(text: str, limit: int) -> list[str]:
    """Texts longer than a channel allows, split at line breaks (or hard, for one huge line)."""
    if not text:
        return []
    chunks: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while len(line) > limit:
            if current:
                chunks.append(current)
                current = ""
            chunks.append(line[:limit])
            line = line[limit:]
        if len(current) + len(line) > limit:
            chunks.append(current)
            current = ""
        current += line
    if current:
        chunks.append(current)
    return [chunk.rstrip("\n") for chunk in chunks]
