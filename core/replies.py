"""What a chat channel sends: a text with buttons, an image, a request for the phone number.

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
