"""Messages a platform accepted from us, and how far each got (sent, delivered, read, failed)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from actions.domain import DeliveryStatus, OutboxState
from actions.models import Outbox, Resident, SentMessage

# Statuses can arrive out of order (a "delivered" after its "read"); a later step never
# goes back to an earlier one. A failure is final.
_RANK = {
    DeliveryStatus.ACCEPTED: 0,
    DeliveryStatus.SENT: 1,
    DeliveryStatus.DELIVERED: 2,
    DeliveryStatus.READ: 3,
    DeliveryStatus.FAILED: 4,
}


def record_sent(
    session: Session,
    *,
    channel: str,
    platform_message_id: str,
    platform_user_id: str,
    kind: str,
    outbox_id: int | None,
    at: datetime,
) -> SentMessage:
    """Remember a message the platform accepted, to match the statuses it reports later."""
    resident_id = session.scalar(
        select(Resident.id).where(
            Resident.channel == channel, Resident.platform_user_id == platform_user_id
        )
    )
    row = SentMessage(
        channel=channel,
        platform_message_id=platform_message_id,
        resident_id=resident_id,
        outbox_id=outbox_id,
        kind=kind,
        status=DeliveryStatus.ACCEPTED,
        created_at=at,
        status_at=at,
    )
    session.add(row)
    session.flush()
    return row


def record_status(
    session: Session,
    *,
    channel: str,
    platform_message_id: str,
    status: DeliveryStatus,
    at: datetime,
    error: str = "",
) -> SentMessage | None:
    """Move a sent message to a later status; None when the message is not ours."""
    row = session.scalar(
        select(SentMessage)
        .where(
            SentMessage.channel == channel,
            SentMessage.platform_message_id == platform_message_id,
        )
        .with_for_update()
    )
    if row is None:
        return None
    if _RANK[status] > _RANK[row.status]:
        row.status, row.status_at = status, at
        if error:
            row.error = error[:500]
    session.flush()
    return row


def send_again(
    session: Session, *, outbox_id: int, reason: str, now: datetime, **flags: object
) -> None:
    """Put a delivered outbox row back in the queue, with `flags` added to its parameters.

    For a message the platform accepted and then refused (WhatsApp: outside the 24-hour
    window), so that it goes out again in the form the platform takes.
    """
    row = session.get(Outbox, outbox_id)
    if row is None:
        return
    row.state, row.next_attempt_at, row.claimed_until = OutboxState.PENDING, now, None
    row.params = {**row.params, **flags}
    row.last_error = reason[:500]
    session.flush()
