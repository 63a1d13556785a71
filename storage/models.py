"""Database tables. The schema is changed only through alembic migrations (storage/migrations)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    LargeBinary,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out — also on SQLite, which keeps no zone."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use an aware one")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _when(nullable: bool = False) -> Any:
    return Column(UTCDateTime(), nullable=nullable)


class Agency(SQLModel, table=True):
    """Cơ quan / đơn vị, synced from the catalog; kept so records outlive catalog edits."""

    code: str = Field(primary_key=True, max_length=32)
    name_vi: str
    name_en: str
    kind: str = Field(max_length=32)
    parent_code: str | None = Field(default=None, max_length=32)


class Procedure(SQLModel, table=True):
    """Thủ tục hành chính, synced from the catalog."""

    code: str = Field(primary_key=True, max_length=32)
    slug: str = Field(max_length=64)
    name_vi: str
    name_en: str
    agency_kind: str = Field(max_length=32)
    processing_days: int
    same_day: bool
    fee_vnd: int


class Citizen(SQLModel, table=True):
    """Tổ chức, cá nhân: the person behind one or more channel identities."""

    id: int | None = Field(default=None, primary_key=True)
    full_name: str | None = None
    phone: str | None = Field(default=None, max_length=20, index=True)
    id_number: str | None = Field(default=None, max_length=12)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_when())


class ChannelIdentity(SQLModel, table=True):
    """A citizen as one channel knows them (a Telegram chat, a Zalo user, a web-chat session)."""

    __table_args__ = (UniqueConstraint("channel", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    citizen_id: int = Field(foreign_key="citizen.id", index=True)
    channel: str = Field(max_length=16)
    external_id: str = Field(max_length=128)
    language: str = Field(default="vi", max_length=8)
    conversation: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    last_seen_at: datetime | None = Field(default=None, sa_column=_when(nullable=True))
    # Set when the citizen left the channel (unfollowed the Zalo OA): pushes go another way.
    unreachable_at: datetime | None = Field(default=None, sa_column=_when(nullable=True))


class Dossier(SQLModel, table=True):
    """Hồ sơ. `status` changes only through core.dossier.decide (see storage.dossiers)."""

    __table_args__ = (
        # The inbox counts read only this index on PostgreSQL (appointment date included).
        Index(
            "ix_dossier_agency_status_activity",
            "agency_code",
            "status",
            "last_activity_at",
            postgresql_include=["appointment_date", "id"],
        ),
        Index("ix_dossier_agency_activity", "agency_code", "last_activity_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=40, unique=True)
    official_code: str | None = Field(default=None, max_length=64, unique=True)
    procedure_code: str = Field(foreign_key="procedure.code", max_length=32)
    agency_code: str = Field(foreign_key="agency.code", max_length=32)
    citizen_id: int | None = Field(default=None, foreign_key="citizen.id", index=True)
    channel: str = Field(max_length=16)
    status: str = Field(max_length=32)
    submitted_at: datetime = Field(sa_column=_when())
    received_at: datetime | None = Field(default=None, sa_column=_when(nullable=True))
    appointment_date: date | None = None
    extended: bool = False
    last_activity_at: datetime = Field(default_factory=utcnow, sa_column=_when())
    # When the dossier was first queued for the agency's one-stop system (core.flows): later
    # changes go there as updates. None: not forwarded (or the agency has no such system).
    onestop_queued_at: datetime | None = Field(default=None, sa_column=_when(nullable=True))


class DocumentFile(SQLModel, table=True):
    """One photo or PDF of one document component (thành phần hồ sơ)."""

    id: int | None = Field(default=None, primary_key=True)
    dossier_id: int = Field(foreign_key="dossier.id", index=True)
    component_code: str = Field(max_length=64)
    media_key: str = Field(max_length=128)
    sha256: str = Field(max_length=64)
    size: int
    content_type: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_when())


class ThreadMessage(SQLModel, table=True):
    """The chat thread between the citizen and the desk about one dossier."""

    id: int | None = Field(default=None, primary_key=True)
    dossier_id: int = Field(foreign_key="dossier.id", index=True)
    direction: str = Field(max_length=8)  # "in" from the citizen, "out" to the citizen
    staff_user_id: int | None = Field(default=None, foreign_key="staffuser.id")
    text: str
    created_at: datetime = Field(default_factory=utcnow, sa_column=_when())


class StatusEvent(SQLModel, table=True):
    """The audit trail (Phiếu kiểm soát quá trình giải quyết hồ sơ): who, when, from, to, note."""

    id: int | None = Field(default=None, primary_key=True)
    dossier_id: int = Field(foreign_key="dossier.id", index=True)
    action: str = Field(max_length=32)
    from_status: str = Field(max_length=32)
    to_status: str = Field(max_length=32)
    actor_kind: str = Field(max_length=16)
    staff_user_id: int | None = Field(default=None, foreign_key="staffuser.id")
    note: str
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    at: datetime = Field(sa_column=_when())


class StaffUser(SQLModel, table=True):
    """A desk officer's personal account, `name.unit` (Bến Tre Art. 2.3)."""

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True)
    full_name: str
    agency_code: str = Field(foreign_key="agency.code", max_length=32)
    role: str = Field(max_length=16)
    password_hash: str
    must_change_password: bool = True
    # Carried in the session cookie and checked on every request: bumped on sign-out, password
    # change and reset, it ends every session issued before.
    session_generation: int = 0


class StaffTelegram(SQLModel, table=True):
    """A staff account bound to one Telegram user of the staff bot (its private chat)."""

    staff_user_id: int = Field(primary_key=True, foreign_key="staffuser.id")
    telegram_user_id: int = Field(sa_column=Column(BigInteger, nullable=False, unique=True))
    chat_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    linked_at: datetime = Field(sa_column=_when())
    # A step waiting for the officer's next text (a refusal's reason): {"key": <StaffButton>}.
    waiting: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class StaffLinkToken(SQLModel, table=True):
    """A one-time deep link (t.me/<bot>?start=<token>) to bind an account; only its hash kept."""

    token_hash: str = Field(primary_key=True, max_length=64)
    staff_user_id: int = Field(foreign_key="staffuser.id", index=True)
    expires_at: datetime = Field(sa_column=_when())
    used_at: datetime | None = Field(default=None, sa_column=_when(nullable=True))


class StaffButton(SQLModel, table=True):
    """What an inline button of the staff bot means: its callback data is only this row's key,
    so a button carries no fact the server trusts; who may press it is stored with it."""

    key: str = Field(primary_key=True, max_length=24)
    staff_user_id: int = Field(foreign_key="staffuser.id", index=True)
    dossier_id: int = Field(foreign_key="dossier.id")
    action: str = Field(max_length=32)
    created_at: datetime = Field(sa_column=_when())


class LoginThrottle(SQLModel, table=True):
    """Failed sign-ins of one address (`ip:…`) or one address and account name (`account:…`):
    a fading count and until when the next try must wait (core.staff.Throttle)."""

    __table_args__ = (Index("ix_loginthrottle_updated_at", "updated_at"),)

    key: str = Field(primary_key=True, max_length=200)
    score: float = 0.0
    updated_at: datetime = Field(sa_column=_when())
    wait_until: datetime | None = Field(default=None, sa_column=_when(nullable=True))


class AccountEvent(SQLModel, table=True):
    """Nhật ký tài khoản: who did what to which staff account, from where, written in the
    transaction of the change. Names are copied, so the log outlives the accounts."""

    __table_args__ = (Index("ix_accountevent_agency_id", "agency_code", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=_when())
    kind: str = Field(max_length=16)
    agency_code: str = Field(max_length=32)  # the account's agency: whose admins see the entry
    staff_id: int | None = Field(default=None, foreign_key="staffuser.id")
    username: str = Field(max_length=64)
    actor_username: str | None = Field(default=None, max_length=64)  # None: the server's CLI
    address: str = Field(default="", max_length=64)
    details: str = Field(default="", max_length=200)


class OutboxMessage(SQLModel, table=True):
    """A notice to deliver, written in the same transaction as the change that caused it."""

    __table_args__ = (
        Index("ix_outbox_state_due", "state", "next_attempt_at"),
        Index("ix_outbox_mailbox", "channel", "recipient", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=128, unique=True)
    dossier_id: int | None = Field(default=None, foreign_key="dossier.id", index=True)
    citizen_id: int | None = Field(default=None, foreign_key="citizen.id")
    channel: str = Field(max_length=16)
    recipient: str = Field(max_length=128)
    template: str = Field(max_length=64)
    values: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    state: str = Field(default="pending", max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_column=_when())
    last_error: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=_when())
    sent_at: datetime | None = Field(default=None, sa_column=_when(nullable=True))
    # The service's id of what was sent (Zalo's message id), to match its delivery receipts.
    sent_ref: str | None = Field(default=None, max_length=64, index=True)
    receipt_at: datetime | None = Field(default=None, sa_column=_when(nullable=True))


class CodeCounter(SQLModel, table=True):
    """Last dossier-code sequence issued per receiving agency per (local) day."""

    agency_code: str = Field(primary_key=True, max_length=32)
    day: date = Field(primary_key=True)
    last_sequence: int = 0


class InboundEvent(SQLModel, table=True):
    """Webhook deliveries already handled (Telegram update_id, Zalo msg_id, SMS id), and the
    replies a dialogue turn owes the citizen: written in the turn's own transaction, so a reply
    (the dossier code above all) outlives a process that dies before sending it
    (storage.inbound.owe_replies)."""

    # Old rows are forgotten by age (storage.inbound.forget_deliveries), once a minute.
    __table_args__ = (
        Index("ix_inboundevent_received_at", "received_at"),
        # The dispatcher looks for events and replies whose process went away.
        Index(
            "ix_inboundevent_unfinished",
            "reply_lease_until",
            sqlite_where=text("reply_state IN ('received', 'sending')"),
            postgresql_where=text("reply_state IN ('received', 'sending')"),
        ),
    )

    channel: str = Field(primary_key=True, max_length=16)
    external_id: str = Field(primary_key=True, max_length=128)
    received_at: datetime = Field(default_factory=utcnow, sa_column=_when())
    recipient: str | None = Field(default=None, max_length=128)  # the chat the replies go to
    # An event acknowledged before it is handled (Zalo wants its answer within 2 s), kept until
    # its turn has run: see storage.inbound.accept_event.
    payload: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    replies: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON))
    # None (nothing owed) | received (payload not handled yet) | answered (the replies went in
    # the webhook's response) | sending | sent
    reply_state: str | None = Field(default=None, max_length=16)
    replies_sent: int = 0  # replies[:replies_sent] are known to have gone out
    reply_lease_until: datetime | None = Field(default=None, sa_column=_when(nullable=True))


class AlbumPart(SQLModel, table=True):
    """A photo of a Telegram album waiting for its siblings: the album becomes one dialogue turn
    (one reply) once no new photo has arrived for a moment. Deleted when the turn runs."""

    __table_args__ = (Index("ix_albumpart_group", "channel", "external_id", "media_group_id"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    external_id: str = Field(max_length=128)
    media_group_id: str = Field(max_length=64)
    update_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    caption: str = ""
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    received_at: datetime = Field(default_factory=utcnow, sa_column=_when())


class Rating(SQLModel, table=True):
    """Đánh giá mức độ hài lòng: 1–5 stars for a finished dossier, one per dossier."""

    id: int | None = Field(default=None, primary_key=True)
    dossier_id: int = Field(foreign_key="dossier.id", unique=True)
    citizen_id: int = Field(foreign_key="citizen.id", index=True)
    stars: int
    comment: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=_when())


class Feedback(SQLModel, table=True):
    """Phản ánh, kiến nghị from a citizen; staff answer within 3 working days (Bến Tre Art. 12)."""

    id: int | None = Field(default=None, primary_key=True)
    citizen_id: int = Field(foreign_key="citizen.id", index=True)
    channel: str = Field(max_length=16)
    # The desk that answers it: the one that last handled this citizen, else the province's.
    agency_code: str | None = Field(default=None, max_length=32, index=True)
    text: str
    media_keys: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_when())
    answered_at: datetime | None = Field(default=None, sa_column=_when(nullable=True))


class CannedReply(SQLModel, table=True):
    """Câu trả lời mẫu of an agency, with placeholders such as {code}, {name}, {procedure}."""

    id: int | None = Field(default=None, primary_key=True)
    agency_code: str = Field(foreign_key="agency.code", max_length=32, index=True)
    title: str = Field(max_length=120)
    text: str


class ZaloToken(SQLModel, table=True):
    """The Zalo Official Account's OAuth v4 pair, one row per OA. Refresh tokens are single-use
    and rotate, so the row is locked while one is spent (storage.zalo.lock_token)."""

    oa_id: str = Field(primary_key=True, max_length=32)
    access_token: str
    refresh_token: str
    expires_at: datetime = Field(sa_column=_when())
    refreshed_at: datetime = Field(default_factory=utcnow, sa_column=_when())
    broken_reason: str | None = None  # why it can no longer be refreshed (the admin reconnects)


class SmsSubscription(SQLModel, table=True):
    """A phone that asked by SMS ("DK <code>") for a dossier's status pushes — a dossier filed
    at the counter has no chat to push to. "HUY <code>" deletes the row."""

    dossier_id: int = Field(foreign_key="dossier.id", primary_key=True)
    phone: str = Field(primary_key=True, max_length=20)  # 84…, as core.sms.msisdn writes it
    created_at: datetime = Field(default_factory=utcnow, sa_column=_when())
