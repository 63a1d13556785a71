"""A turn's owed replies are stored as JSON and sent later from it (storage/inbound.py): what
comes back must render as the live reply would, keyboards included."""

from __future__ import annotations

import json
from dataclasses import fields

from core.replies import Button, Reply
from storage.inbound import reply_from_json, reply_to_json


def test_every_part_of_a_reply_survives_being_owed() -> None:
    reply = Reply(
        "Chọn nơi nộp:",
        ((Button("Phường Tân Ninh", "agency:000.20.01.H53"),), (Button("⬅️", "nav:back"),)),
        image_png=b"\x89PNG not really",
        ask_contact=True,
        ask_location=True,
    )
    assert all(getattr(reply, f.name) != f.default for f in fields(Reply) if f.name != "text")
    stored = json.loads(json.dumps(reply_to_json(reply)))
    assert reply_from_json(stored) == reply
    assert reply_from_json({"text": "Xin chào", "buttons": []}) == Reply("Xin chào")  # older rows
