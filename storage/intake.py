"""The dialogue's back office over storage: files, submission, lookups, per-identity state.

Transports (Telegram, Zalo, web chat) call `converse`: it loads the citizen's conversation, runs
the core dialogue and saves the new state in the same transaction as anything it submitted.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, bindparam, select, update
from sqlmodel import Session, col

from core.calendar import WorkingCalendar
from core.catalog import Catalog
from core.conversation import (
    Conversation,
    Incoming,
    IncomingFile,
    Submitted,
    SupplementRequest,
    handle,
)
from core.documents import CheckedDocument
from core.dossier import CLOSED, Action, Actor, Command, Status
from core.flows import FlowRules
from core.lookup import PublicStatus
from core.qr import lookup_url, qr_png
from core.replies import Reply
from storage.dossiers import (
    apply_command,
    citizen_public_statuses,
    feedback_agency,
    find_by_code,
    lookup_public_status,
    open_supplement,
    submit_dossier,
)
from storage.flows import record_citizen_message
from storage.media import MediaStore
from storage.models import (
    AlbumPart,
    ChannelIdentity,
    Citizen,
    DocumentFile,
    Dossier,
    Feedback,
    OutboxMessage,
    Rating,
    ThreadMessage,
    UTCDateTime,
    utcnow,
)


@dataclass(frozen=True)
class Identity:
    """A citizen as one channel knows them (a Telegram chat, a Zalo user, a web-chat session)."""

    id: int
    citizen_id: int
    channel: str
    conversation: dict[str, Any]


_identities = ChannelIdentity.__table__.c  # type: ignore[attr-defined]
# Built once: every dialogue turn runs these two, and building a statement costs more than
# running it on SQLite (bench/telegram_intake.py).
# FOR UPDATE (PostgreSQL; SQLite runs one writer at a time): a second turn of the same citizen
# waits for the first one's commit and reads its new state, instead of saving over it.
_FIND_IDENTITY = (
    select(_identities.id, _identities.citizen_id, _identities.conversation)
    .where(
        _identities.channel == bindparam("find_channel"),
        _identities.external_id == bindparam("find_external_id"),
    )
    .with_for_update()
)
_SAVE_IDENTITY = (
    update(ChannelIdentity.__table__)  # type: ignore[attr-defined]
    .where(_identities.id == bindparam("identity_id"))
    .values(
        conversation=bindparam("new_conversation", type_=JSON),
        language=bindparam("new_language"),
        last_seen_at=bindparam("seen_at", type_=UTCDateTime),
    )
)


def identity_for(session: Session, channel: str, external_id: str) -> Identity:
    """The citizen as this channel knows them; created (with an empty citizen) on first contact."""
    connection = session.connection()
    row = connection.execute(
        _FIND_IDENTITY, {"find_channel": channel, "find_external_id": external_id}
    ).first()
    if row is not None:
        return Identity(row.id, row.citizen_id, channel, row.conversation or {})
    citizen = Citizen()
    session.add(citizen)
    session.flush()
    assert citizen.id is not None
    identity = ChannelIdentity(citizen_id=citizen.id, channel=channel, external_id=external_id)
    session.add(identity)
    session.flush()
    assert identity.id is not None
    return Identity(identity.id, citizen.id, channel, {})


def detach_identity(session: Session, channel: str, external_id: str) -> None:
    """The channel id (a web-chat session) no longer names its citizen: "Finish" on a shared
    device. The identity row and its mailbox are renamed to an id nobody holds, so an old copy
    of the cookie starts a new, empty citizen and reads none of the previous one's dossiers or
    notices (the dossiers stay with their citizen, for the desk)."""
    tombstone = f"ended:{secrets.token_urlsafe(18)}"
    session.execute(
        update(ChannelIdentity.__table__)  # type: ignore[attr-defined]
        .where(_identities.channel == channel, _identities.external_id == external_id)
        .values(external_id=tombstone)
    )
    outbox: Any = OutboxMessage.__table__  # type: ignore[attr-defined]
    session.execute(
        update(outbox)
        .where(outbox.c.channel == channel, outbox.c.recipient == external_id)
        .values(recipient=tombstone)
    )


class StorageBackoffice:
    """Implements core.conversation.Backoffice for one citizen identity, in one session."""

    def __init__(
        self,
        session: Session,
        identity: Identity,
        *,
        catalog: Catalog,
        calendar: WorkingCalendar,
        media: MediaStore,
        public_base_url: str,
        rules: FlowRules,
        now: datetime,
    ) -> None:
        self.session, self.identity, self.rules = session, identity, rules
        self.catalog, self.calendar, self.media = catalog, calendar, media
        self.public_base_url, self.now = public_base_url, now

    def store_file(self, document: CheckedDocument) -> dict[str, Any]:
        stored = self.media.put(document.data, document.content_type)  # StorageUnavailable
        return {
            "key": stored.key,
            "sha256": stored.sha256,
            "size": stored.size,
            "content_type": stored.content_type,
        }

    def submit(self, conversation: Conversation) -> Submitted:
        citizen = self.session.get(Citizen, self.identity.citizen_id)
        assert citizen is not None and conversation.procedure and conversation.agency
        citizen.full_name, citizen.phone = conversation.name, conversation.phone
        if conversation.id_number:  # only when the procedure uses it (see core.conversation)
            citizen.id_number = conversation.id_number
        self.session.add(citizen)
        dossier, _ = submit_dossier(
            self.session,
            catalog=self.catalog,
            calendar=self.calendar,
            procedure_code=conversation.procedure,
            agency_code=conversation.agency,
            citizen_id=citizen.id,
            channel=self.identity.channel,
            at=self.now,
            rules=self.rules,
        )
        assert dossier.id is not None
        self._add_files(dossier.id, conversation.files)
        url = lookup_url(self.public_base_url, dossier.code)
        return Submitted(code=dossier.code, lookup_url=url, qr_png=qr_png(url))

    def lookup(self, text: str) -> PublicStatus | None:
        return lookup_public_status(self.session, text, self.catalog)

    def open_supplement(self) -> SupplementRequest | None:
        return open_supplement(self.session, self.identity.citizen_id)

    def resubmit(self, conversation: Conversation) -> None:
        """Nộp bổ sung: the same dossier, same code, with the new files; the clock restarts."""
        dossier = self.session.execute(
            select(Dossier).where(Dossier.code == conversation.supplement)  # type: ignore[arg-type]
        ).scalar_one()
        if dossier.citizen_id != self.identity.citizen_id:
            raise PermissionError("not this citizen's dossier")
        assert dossier.id is not None
        apply_command(
            self.session,
            dossier.id,
            Command(Action.RESUBMIT, Actor.CITIZEN, self.now),
            catalog=self.catalog,
            calendar=self.calendar,
            rules=self.rules,
        )
        self._add_files(dossier.id, conversation.files)

    def _add_files(self, dossier_id: int, files: dict[str, list[dict[str, Any]]]) -> None:
        for component, stored in files.items():
            for file in stored:
                self.session.add(
                    DocumentFile(
                        dossier_id=dossier_id,
                        component_code=component,
                        media_key=file["key"],
                        sha256=file["sha256"],
                        size=file["size"],
                        content_type=file["content_type"],
                    )
                )

    def rate(self, code: str, stars: int) -> bool:
        """Only the citizen's own dossier, only once it has ended, only once."""
        dossier = self.session.execute(
            select(Dossier).where(Dossier.code == code)  # type: ignore[arg-type]
        ).scalar_one_or_none()
        if dossier is None or dossier.citizen_id != self.identity.citizen_id:
            return False
        if Status(dossier.status) not in CLOSED or dossier.status == Status.WITHDRAWN:
            return False
        exists = self.session.execute(
            select(Rating).where(Rating.dossier_id == dossier.id)
        ).scalar_one_or_none()
        if exists is not None:
            return False
        assert dossier.id is not None
        self.session.add(
            Rating(dossier_id=dossier.id, citizen_id=self.identity.citizen_id, stars=stars)
        )
        return True

    def comment_rating(self, code: str, comment: str) -> None:
        rating = self.session.execute(
            select(Rating)
            .join(Dossier, Dossier.id == Rating.dossier_id)  # type: ignore[arg-type]
            .where(Dossier.code == code, Rating.citizen_id == self.identity.citizen_id)  # type: ignore[arg-type]
        ).scalar_one_or_none()
        if rating is not None:
            rating.comment = comment
            self.session.add(rating)

    def feedback(self, text: str, files: list[dict[str, Any]]) -> None:
        self.session.add(
            Feedback(
                citizen_id=self.identity.citizen_id,
                channel=self.identity.channel,
                agency_code=feedback_agency(self.session, self.catalog, self.identity.citizen_id),
                text=text,
                media_keys=[f["key"] for f in files],
            )
        )

    def message_desk(self, code: str, text: str) -> bool:
        """The citizen's message into the thread of one of their own open dossiers."""
        dossier = find_by_code(self.session, code)
        if dossier is None or dossier.citizen_id != self.identity.citizen_id:
            return False
        if Status(dossier.status) in CLOSED:
            return False
        assert dossier.id is not None
        message = ThreadMessage(dossier_id=dossier.id, direction="in", text=text,
                                created_at=self.now)  # fmt: skip
        self.session.add(message)
        dossier.last_activity_at = self.now
        self.session.add(dossier)
        self.session.flush()
        record_citizen_message(self.session, dossier, message)
        return True

    def my_dossiers(self) -> list[PublicStatus]:
        return citizen_public_statuses(self.session, self.identity.citizen_id, self.catalog)


def converse(
    session: Session,
    *,
    channel: str,
    external_id: str,
    incoming: Incoming,
    catalog: Catalog,
    calendar: WorkingCalendar,
    media: MediaStore,
    public_base_url: str,
    rules: FlowRules,
    now: datetime | None = None,
) -> list[Reply]:
    """One turn of the dialogue for one channel identity, persisted in the caller's transaction."""
    identity = identity_for(session, channel, external_id)
    conversation = Conversation.from_json(identity.conversation)
    backoffice = StorageBackoffice(
        session,
        identity,
        catalog=catalog,
        calendar=calendar,
        media=media,
        public_base_url=public_base_url,
        rules=rules,
        now=now or utcnow(),
    )
    replies = handle(conversation, incoming, catalog=catalog, backoffice=backoffice)
    session.connection().execute(
        _SAVE_IDENTITY,
        {
            "identity_id": identity.id,
            "new_conversation": conversation.to_json(),
            "new_language": conversation.lang,
            "seen_at": now or utcnow(),
        },
    )
    return replies


def record_outside_reply(session: Session, channel: str, external_id: str, text: str) -> bool:
    """A person answered the citizen outside this product (from Zalo's own OA manager): kept in
    the thread of the citizen's latest open dossier, so the desk sees what was said."""
    citizen_id = session.execute(
        select(ChannelIdentity.citizen_id).where(  # type: ignore[call-overload]
            ChannelIdentity.channel == channel, ChannelIdentity.external_id == external_id
        )
    ).scalar_one_or_none()
    if citizen_id is None:
        return False
    open_ones = [s.value for s in Status if s not in CLOSED]
    dossier = session.execute(
        select(Dossier)
        .where(Dossier.citizen_id == citizen_id, col(Dossier.status).in_(open_ones))
        .order_by(col(Dossier.submitted_at).desc())
        .limit(1)
    ).scalar_one_or_none()
    if dossier is None or dossier.id is None:
        return False
    session.add(ThreadMessage(dossier_id=dossier.id, direction=OUTSIDE_REPLY, text=text[:4000]))
    return True


OUTSIDE_REPLY = "oa"  # ThreadMessage.direction of a reply made in the chat app's own tools


def album_incoming(parts: list[AlbumPart]) -> Incoming:
    """The photos of an album, and its caption, as one input: the album gets one answer."""
    caption = next((p.caption for p in parts if p.caption), "")
    return Incoming(text=caption, files=tuple(IncomingFile(p.data) for p in parts))
