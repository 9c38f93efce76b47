"""The store's tables (SQLAlchemy 2 declarative, one city per database)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from actions.domain import (
    AreaLevel,
    Audience,
    BroadcastState,
    CorrectionSource,
    DeliveryState,
    DeliveryStatus,
    DomainError,
    EventKind,
    GroupKind,
    InboxState,
    OfficerRole,
    OutboxState,
    Privacy,
    ReviewState,
    SendMethod,
    TicketKind,
    TicketStatus,
)

# Stable constraint names, so migrations can refer to them on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Store aware datetimes as UTC; SQLite keeps no zone, so it is put back on read."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware one")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _enum(cls: type, name: str | None = None) -> Enum:
    # Values as plain strings with a CHECK, so adding a value is a small migration
    # and no backend-specific ENUM type is involved.
    return Enum(
        cls,
        native_enum=False,
        create_constraint=True,
        length=20,
        values_callable=lambda e: [m.value for m in e],
        name=name or cls.__name__.lower(),  # names the CHECK constraint
        validate_strings=True,
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[str]: JSON}


class City(Base):
    __tablename__ = "city"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    ticket_prefix: Mapped[str] = mapped_column(String(8))
    timezone: Mapped[str] = mapped_column(String(40))
    area_id: Mapped[int] = mapped_column(ForeignKey("area.id"))
    fallback_agency_id: Mapped[int | None] = mapped_column(ForeignKey("agency.id"))

    area: Mapped[Area] = relationship(foreign_keys=[area_id])
    fallback_agency: Mapped[Agency | None] = relationship(foreign_keys=[fallback_agency_id])


class Area(Base):
    """kota -> kecamatan -> kelurahan (-> RW), keyed by the Kemendagri code."""

    __tablename__ = "area"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(24), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    level: Mapped[AreaLevel] = mapped_column(_enum(AreaLevel))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("area.id"), index=True)

    parent: Mapped[Area | None] = relationship(remote_side=[id])

    def ancestors(self) -> list[Area]:
        """Return this area and its parents, the most specific first."""
        chain: list[Area] = []
        node: Area | None = self
        while node is not None:
            chain.append(node)
            node = node.parent
        return chain


class Agency(Base):
    """An OPD of the city, or an outside body (PLN, the water company)."""

    __tablename__ = "agency"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    short_name: Mapped[str] = mapped_column(String(60))
    contact: Mapped[dict[str, Any]] = mapped_column(default=dict)
    telegram_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    active: Mapped[bool] = mapped_column(default=True)
    # How routed tickets also reach the agency's own system (the rest of it: the city file).
    send_method: Mapped[SendMethod] = mapped_column(
        _enum(SendMethod), default=SendMethod.NONE, server_default=SendMethod.NONE.value
    )


class Category(Base):
    __tablename__ = "category"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")


class RoutingRule(Base):
    """(category, area) -> agency; the city-wide rule uses the kota area."""

    __tablename__ = "routing_rule"
    __table_args__ = (UniqueConstraint("category_id", "area_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("category.id"))
    area_id: Mapped[int] = mapped_column(ForeignKey("area.id"))
    agency_id: Mapped[int] = mapped_column(ForeignKey("agency.id"))

    agency: Mapped[Agency] = relationship()


class Resident(Base):
    """Anyone who writes to the bot, identified per channel."""

    __tablename__ = "resident"
    __table_args__ = (
        UniqueConstraint("channel", "platform_user_id"),
        Index("ix_resident_channel_platform_alt_id", "channel", "platform_alt_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    # WhatsApp: the wa_id (phone number), or the business-scoped user id when none is given.
    platform_user_id: Mapped[str] = mapped_column(String(160))
    # A second id the platform knows them by (WhatsApp's business-scoped user id beside wa_id).
    platform_alt_id: Mapped[str | None] = mapped_column(String(160))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    language: Mapped[str] = mapped_column(String(8), default="id")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set when the platform says the resident blocked the bot; cleared when they write again.
    blocked_at: Mapped[datetime | None]
    # Offered to follow the kelurahan of their first report (asked once).
    follow_offered: Mapped[bool] = mapped_column(default=False, server_default="0")
    # When they last wrote to us (WhatsApp: free-form replies only within 24 hours of it).
    last_inbound_at: Mapped[datetime | None]


class Officer(Base):
    """A resident identity that works tickets for an agency."""

    __tablename__ = "officer"

    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("resident.id"), unique=True)
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agency.id"), index=True)
    role: Mapped[OfficerRole] = mapped_column(_enum(OfficerRole))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    resident: Mapped[Resident] = relationship()
    agency: Mapped[Agency | None] = relationship()


class TicketSequence(Base):
    """The last number given out per prefix and year; bumped inside the creating transaction."""

    __tablename__ = "ticket_sequence"

    prefix: Mapped[str] = mapped_column(String(8), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_value: Mapped[int] = mapped_column(Integer, default=0)


class Ticket(Base):
    __tablename__ = "ticket"
    __table_args__ = (
        # The officer's queue: an agency's open tickets, oldest first.
        Index("ix_ticket_agency_status_created", "agency_id", "status", "created_at"),
        Index("ix_ticket_category_area_created", "category_id", "area_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(24), unique=True)
    kind: Mapped[TicketKind] = mapped_column(_enum(TicketKind))
    category_id: Mapped[int] = mapped_column(ForeignKey("category.id"))
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agency.id"))
    reporter_id: Mapped[int] = mapped_column(ForeignKey("resident.id"), index=True)
    description: Mapped[str] = mapped_column(Text)
    location_text: Mapped[str] = mapped_column(Text, default="")
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    area_id: Mapped[int | None] = mapped_column(ForeignKey("area.id"))
    privacy: Mapped[Privacy] = mapped_column(_enum(Privacy), default=Privacy.BIASA)
    status: Mapped[TicketStatus] = mapped_column(_enum(TicketStatus), default=TicketStatus.NEW)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("resident.id"))
    first_response_due_at: Mapped[datetime | None]
    resolution_due_at: Mapped[datetime | None]
    first_response_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    # When the SLA job told someone about this ticket: each happens once (actions/sla.py).
    sla_reminded_at: Mapped[datetime | None]
    sla_first_response_escalated_at: Mapped[datetime | None]
    sla_resolution_escalated_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Bumped on every change: two officers changing one ticket at once cannot both win.
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}

    category: Mapped[Category] = relationship()
    agency: Mapped[Agency | None] = relationship()
    reporter: Mapped[Resident] = relationship(foreign_keys=[reporter_id])
    area: Mapped[Area | None] = relationship()
    assignee: Mapped[Resident | None] = relationship(foreign_keys=[assignee_id])
    photos: Mapped[list[TicketPhoto]] = relationship(
        order_by="TicketPhoto.id", cascade="all, delete-orphan"
    )
    events: Mapped[list[TicketEvent]] = relationship(order_by="TicketEvent.id", viewonly=True)


class TicketPhoto(Base):
    """A photo as the platform keeps it (its file id), not the bytes."""

    __tablename__ = "ticket_photo"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    file_id: Mapped[str] = mapped_column(String(255))
    added_by_id: Mapped[int | None] = mapped_column(ForeignKey("resident.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TicketEvent(Base):
    """Append-only history of a ticket; rows are never updated or deleted."""

    __tablename__ = "ticket_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), index=True)
    kind: Mapped[EventKind] = mapped_column(_enum(EventKind))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("resident.id"))  # None: the system
    from_status: Mapped[TicketStatus | None] = mapped_column(_enum(TicketStatus, "from_status"))
    to_status: Mapped[TicketStatus | None] = mapped_column(_enum(TicketStatus, "to_status"))
    body: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    actor: Mapped[Resident | None] = relationship()
    # Lets an event be written with a ticket not yet flushed (one flush per new ticket).
    ticket: Mapped[Ticket] = relationship(viewonly=False, overlaps="events")


class Outbox(Base):
    """A message to deliver later, written in the transaction of the change that causes it.

    It holds a template id and its parameters, not text: the dispatcher renders it in the
    recipient's language when it is sent.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_state_due", "state", "next_attempt_at"),
        # One chat's messages go out in order: a row waits while an older one of its
        # recipient is pending.
        Index("ix_outbox_resident_state", "resident_id", "state", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    audience: Mapped[Audience] = mapped_column(_enum(Audience))
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("resident.id"))
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agency.id"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"), index=True)
    template: Mapped[str] = mapped_column(String(80))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[OutboxState] = mapped_column(_enum(OutboxState), default=OutboxState.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A dispatcher leases a row before sending it, so two dispatchers never send it both.
    claimed_by: Mapped[str] = mapped_column(String(64), default="", server_default="")
    claimed_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]

    ticket: Mapped[Ticket | None] = relationship()


class TicketFollower(Base):
    """A resident who joined a ticket ("Ikut laporan ini") and hears its updates."""

    __tablename__ = "ticket_follower"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("resident.id"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Conversation(Base):
    """Where a resident is in a conversation (a form in progress), kept across restarts."""

    __tablename__ = "conversation"

    resident_id: Mapped[int] = mapped_column(ForeignKey("resident.id"), primary_key=True)
    state: Mapped[str] = mapped_column(String(40), default="idle")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)  # set by each turn's clock


class ProcessedUpdate(Base):
    """A platform update already handled: a redelivery is dropped."""

    __tablename__ = "processed_update"

    channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    update_id: Mapped[str] = mapped_column(String(160), primary_key=True)  # WhatsApp's wamid.…
    processed_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class InboxUpdate(Base):
    """A platform update as it came, stored before it is acknowledged.

    Workers handle the pending ones, one sender's in order; the transaction that handles an
    update deletes it, so a crash at any instant loses nothing and handles nothing twice.
    """

    __tablename__ = "inbox_update"
    __table_args__ = (
        UniqueConstraint("channel", "update_id"),
        Index("ix_inbox_update_queue", "state", "id"),
        Index("ix_inbox_update_sender", "channel", "sender", "state", "id"),
    )
    # One sender's updates are handled one at a time, oldest first: `InboxSender` says which.

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    update_id: Mapped[str] = mapped_column(String(160))
    sender: Mapped[str] = mapped_column(String(160))  # whose turn it is
    payload: Mapped[str] = mapped_column(Text)  # JSON, cleaned at the edge
    state: Mapped[InboxState] = mapped_column(_enum(InboxState), default=InboxState.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str] = mapped_column(Text, default="")


class InboxSender(Base):
    """A sender with updates waiting: the oldest is `head_id`, due at `due_at`.

    Workers take senders, not updates: the row is locked (PostgreSQL) while its head is
    handled, so one sender's updates go one at a time and in order, and finding work is one
    index lookup however long the queue.
    """

    __tablename__ = "inbox_sender"
    __table_args__ = (Index("ix_inbox_sender_head", "head_id"),)

    channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    sender: Mapped[str] = mapped_column(String(160), primary_key=True)
    head_id: Mapped[int]
    due_at: Mapped[datetime]


class ChatPace(Base):
    """When the next message may go to one chat, shared by every process that sends.

    A generic cell rate: a burst of a few messages, then one per interval (Telegram about one
    a second, WhatsApp about one every six seconds to one person).
    """

    __tablename__ = "chat_pace"

    resident_id: Mapped[int] = mapped_column(ForeignKey("resident.id"), primary_key=True)
    ready_at: Mapped[datetime]  # nothing goes to this chat before then
    tat: Mapped[datetime]  # the theoretical time of the next message at the steady pace


class AreaFollower(Base):
    """A resident who hears the announcements for an area (and the areas inside it)."""

    __tablename__ = "area_follower"

    resident_id: Mapped[int] = mapped_column(ForeignKey("resident.id"), primary_key=True)
    area_id: Mapped[int] = mapped_column(ForeignKey("area.id"), primary_key=True, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    area: Mapped[Area] = relationship()


class CivicGroup(Base):
    """An RT/RW, a kelurahan, a community or an agency that announces to its followers."""

    __tablename__ = "civic_group"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[GroupKind] = mapped_column(_enum(GroupKind))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    areas: Mapped[list[Area]] = relationship(secondary="group_area", order_by="Area.code")


class GroupArea(Base):
    """An area a group may address (and every area inside it)."""

    __tablename__ = "group_area"

    group_id: Mapped[int] = mapped_column(ForeignKey("civic_group.id"), primary_key=True)
    area_id: Mapped[int] = mapped_column(ForeignKey("area.id"), primary_key=True)


class GroupManager(Base):
    """A resident who may announce for a group."""

    __tablename__ = "group_manager"

    group_id: Mapped[int] = mapped_column(ForeignKey("civic_group.id"), primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("resident.id"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    group: Mapped[CivicGroup] = relationship()
    resident: Mapped[Resident] = relationship()


class GroupFollower(Base):
    """A resident who follows a group."""

    __tablename__ = "group_follower"

    resident_id: Mapped[int] = mapped_column(ForeignKey("resident.id"), primary_key=True)
    group_id: Mapped[int] = mapped_column(
        ForeignKey("civic_group.id"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    group: Mapped[CivicGroup] = relationship()


class Broadcast(Base):
    """An announcement of a group to its followers or to an area it may address."""

    __tablename__ = "broadcast"
    __table_args__ = (Index("ix_broadcast_state_scheduled", "state", "scheduled_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("civic_group.id"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("resident.id"))  # None: the CLI
    text: Mapped[str] = mapped_column(Text)
    photo: Mapped[str] = mapped_column(String(255), default="")  # a file id or URL
    link: Mapped[str] = mapped_column(String(500), default="")
    area_id: Mapped[int | None] = mapped_column(ForeignKey("area.id"))  # None: the followers
    poll_options: Mapped[list[str]] = mapped_column(default=list)
    state: Mapped[BroadcastState] = mapped_column(
        _enum(BroadcastState), default=BroadcastState.SCHEDULED
    )
    scheduled_at: Mapped[datetime] = mapped_column(default=utcnow)
    recipients: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    cancelled_by_id: Mapped[int | None] = mapped_column(ForeignKey("resident.id"))

    group: Mapped[CivicGroup] = relationship()
    area: Mapped[Area | None] = relationship()


class BroadcastDelivery(Base):
    """One announcement for one resident: claimed with a lease, sent once."""

    __tablename__ = "broadcast_delivery"
    __table_args__ = (
        UniqueConstraint("broadcast_id", "resident_id"),
        Index("ix_broadcast_delivery_queue", "state", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcast.id"))
    resident_id: Mapped[int] = mapped_column(ForeignKey("resident.id"))
    state: Mapped[DeliveryState] = mapped_column(
        _enum(DeliveryState), default=DeliveryState.PENDING
    )
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_by: Mapped[str] = mapped_column(String(64), default="", server_default="")
    claimed_until: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(Text, default="")


class PollVote(Base):
    """A resident's answer to an announcement's poll (a new tap replaces the old one)."""

    __tablename__ = "poll_vote"

    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcast.id"), primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("resident.id"), primary_key=True)
    option: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SendPace(Base):
    """A channel's shared send clock: every worker books its slots here, so together they keep
    to the platform's overall rate."""

    __tablename__ = "send_pace"

    channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    next_slot_at: Mapped[datetime]


class SentMessage(Base):
    """A message a platform accepted from us, by its id there, and how far it got."""

    __tablename__ = "sent_message"
    __table_args__ = (UniqueConstraint("channel", "platform_message_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    platform_message_id: Mapped[str] = mapped_column(String(160))
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("resident.id"), index=True)
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"), index=True)
    kind: Mapped[str] = mapped_column(String(40))  # text, interactive, template, …
    status: Mapped[DeliveryStatus] = mapped_column(
        _enum(DeliveryStatus), default=DeliveryStatus.ACCEPTED
    )
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_at: Mapped[datetime] = mapped_column(default=utcnow)


# ---------------------------------------------------------------- Open311 (GeoReport v2)


class ExternalRequest(Base):
    """A ticket as a service request in an agency's own system, and what that system last said.

    One per ticket and agency: a ticket is handed to an agency's system once.
    """

    __tablename__ = "external_request"
    __table_args__ = (
        UniqueConstraint("ticket_id", "agency_id"),
        Index("ix_external_request_agency_remote", "agency_id", "service_request_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"))
    agency_id: Mapped[int] = mapped_column(ForeignKey("agency.id"))
    # Their id; until their system gives one, the token it answered with.
    service_request_id: Mapped[str | None] = mapped_column(String(120))
    token: Mapped[str | None] = mapped_column(String(120))
    remote_status: Mapped[str] = mapped_column(String(20), default="open")
    remote_notes: Mapped[str] = mapped_column(Text, default="")
    remote_updated_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    ticket: Mapped[Ticket] = relationship()
    agency: Mapped[Agency] = relationship()


class ApiClient(Base):
    """A client that may POST service requests to our Open311 API, known by its key's hash."""

    __tablename__ = "api_client"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256, hex
    key_prefix: Mapped[str] = mapped_column(String(12))  # to tell keys apart in listings
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class ApiSubmission(Base):
    """A ticket created through the Open311 API: by which client, and the token it was given."""

    __tablename__ = "api_submission"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("api_client.id"), index=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), unique=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    ticket: Mapped[Ticket] = relationship()


class NluCorrection(Base):
    """A message the NLU labelled one way and the city's people another.

    `text` is stored redacted (no phone number, no NIK); labels are written as the training
    data writes them ("lapor/jalan"). Reviewed in the terminal (`warga nlu review`); the
    accepted and relabelled ones become training examples (`warga nlu export`).
    """

    __tablename__ = "nlu_correction"
    __table_args__ = (Index("ix_nlu_correction_review_id", "review", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    predicted: Mapped[str] = mapped_column(String(80))
    corrected: Mapped[str] = mapped_column(String(80))
    source: Mapped[CorrectionSource] = mapped_column(_enum(CorrectionSource))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    review: Mapped[ReviewState] = mapped_column(_enum(ReviewState), default=ReviewState.PENDING)
    final_label: Mapped[str | None] = mapped_column(String(80))
    reviewed_at: Mapped[datetime | None]


@event.listens_for(Session, "before_flush")
def _keep_history_append_only(session: Session, flush_context: Any, instances: Any) -> None:
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, TicketEvent) and (
            obj in session.deleted or session.is_modified(obj, include_collections=False)
        ):
            raise DomainError("ticket history is append-only: events cannot change")
