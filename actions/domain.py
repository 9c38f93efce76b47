"""Domain vocabulary: kinds, statuses, roles and the errors services raise."""

from enum import StrEnum


class TicketKind(StrEnum):
    LAPOR = "lapor"
    TANYA = "tanya"
    ASPIRASI = "aspirasi"


class TicketStatus(StrEnum):
    NEW = "new"
    ROUTED = "routed"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REJECTED = "rejected"
    REOPENED = "reopened"

    @property
    def is_open(self) -> bool:
        return self in OPEN_STATUSES


OPEN_STATUSES = frozenset(
    {TicketStatus.NEW, TicketStatus.ROUTED, TicketStatus.IN_PROGRESS, TicketStatus.REOPENED}
)


class Privacy(StrEnum):
    BIASA = "biasa"  # public, with the reporter's name
    ANONIM = "anonim"  # public, identity hidden
    RAHASIA = "rahasia"  # never public


class OfficerRole(StrEnum):
    OFFICER = "officer"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class AreaLevel(StrEnum):
    KOTA = "kota"
    KECAMATAN = "kecamatan"
    KELURAHAN = "kelurahan"
    RW = "rw"


class EventKind(StrEnum):
    CREATED = "created"
    STATUS_CHANGED = "status_changed"
    REPLY = "reply"
    NOTE = "note"
    REROUTED = "rerouted"
    ASSIGNED = "assigned"
    RATING = "rating"
    FOLLOWED = "followed"
    FORWARDED = "forwarded"  # handed to the agency's own system (Open311 or webhook)


class Audience(StrEnum):
    """Who an outbox message is for."""

    RESIDENT = "resident"
    OFFICER = "officer"
    AGENCY = "agency"  # the agency's group chat, or its officers
    EXTERNAL = "external"  # the agency's own system (its send_method), not a chat


class SendMethod(StrEnum):
    """How a ticket routed to an agency reaches the agency's own system, besides the chat."""

    NONE = "none"
    OPEN311 = "open311"  # POST requests.json to the agency's GeoReport v2 server
    WEBHOOK = "webhook"  # POST signed JSON to the agency's endpoint


class OutboxState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class CorrectionSource(StrEnum):
    """Where a correction of the NLU came from: an officer moving a ticket to another category,
    a resident changing the category before sending, or a resident choosing on the buttons
    after the NLU was unsure."""

    REROUTE = "reroute"
    RESIDENT_EDIT = "resident_edit"
    FALLBACK = "fallback"


class ReviewState(StrEnum):
    """A correction waiting for review, kept as corrected, kept under another label, or left
    out of the training data."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    RELABELLED = "relabelled"
    SKIPPED = "skipped"


class InboxState(StrEnum):
    """A stored platform update: waiting to be handled, handled (kept a few days, without its
    content, so that a redelivery is known), or given up on (kept for inspection)."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class GroupKind(StrEnum):
    RT_RW = "rt_rw"
    KELURAHAN = "kelurahan"
    KOMUNITAS = "komunitas"
    AGENCY = "agency"


class BroadcastState(StrEnum):
    SCHEDULED = "scheduled"  # waiting for its time
    SENDING = "sending"  # recipients chosen, deliveries under way
    DONE = "done"
    CANCELLED = "cancelled"


class DeliveryState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    BLOCKED = "blocked"  # the resident blocked the bot
    CANCELLED = "cancelled"


class DomainError(Exception):
    """A request the domain refuses; the message is safe to show an operator."""


class NotFound(DomainError):
    pass


class IllegalTransition(DomainError):
    def __init__(self, number: str, status: TicketStatus, action: str) -> None:
        super().__init__(f"ticket {number} is {status.value}: '{action}' is not allowed")
        self.number = number
        self.status = status
        self.action = action


class MissingReason(DomainError):
    pass


class ConcurrentChange(DomainError):
    """Someone else changed the ticket since it was read; read it again and retry."""


# -- delivery of sent messages (WhatsApp's statuses) -------------------------------------------


class DeliveryStatus(StrEnum):
    """How far a message we sent got; a platform reports each step (WhatsApp's statuses[])."""

    ACCEPTED = "accepted"  # the platform took it
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
