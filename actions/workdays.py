"""Working-day arithmetic for SLA targets: weekends and the city's holidays do not count."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def is_working_day(day: date, holidays: frozenset[date]) -> bool:
    return day.weekday() < 5 and day not in holidays


def add_working_days(day: date, days: int, holidays: frozenset[date]) -> date:
    """Return the `days`-th working day after `day` (`day` itself when `days` is 0)."""
    if days < 0:
        raise ValueError("days must not be negative")
    current = day
    while days:
        current += timedelta(days=1)
        if is_working_day(current, holidays):
            days -= 1
    return current


def due_at(start: datetime, days: int, *, tz: ZoneInfo, holidays: frozenset[date]) -> datetime:
    """Return the deadline in UTC: the end of the `days`-th working day after `start`, local time.

    A ticket opened on Friday with a 3-day target is due at the end of Wednesday; one opened
    on Saturday is due at the end of Wednesday too.
    """
    local_day = start.astimezone(tz).date()
    last_day = add_working_days(local_day, days, holidays)
    return datetime.combine(last_day, time(23, 59, 59), tzinfo=tz).astimezone(UTC)


def working_days_between(start: date, end: date, holidays: frozenset[date]) -> int:
    """Count the working days after `start` up to and including `end`."""
    count, current = 0, start
    while current < end:
        current += timedelta(days=1)
        count += is_working_day(current, holidays)
    return count
