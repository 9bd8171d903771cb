"""Cron schedules as the CronJob controller reads them: parse, refuse, and find the next times.

kube-controller-manager parses ``spec.schedule`` with robfig/cron's ``ParseStandard``: five
fields (minute, hour, day of month, month, day of week) with ``*``, ``?``, lists, ranges,
steps and month/day names, or a descriptor (``@hourly``, ``@daily``, ...). The API server
refuses a schedule that does not parse with robfig's own message, which this module
reproduces so a bad schedule is refused by the sim exactly where a real cluster refuses it.
Pure functions; no clock is read here.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 6))
_MONTHS = {n: i for i, n in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
                                        "dec"), start=1)}
_DAYS = {n: i for i, n in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_DESCRIPTORS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
                "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
_SEARCH_YEARS = 5
"""robfig gives up looking for a next time after five years (``Next`` returns the zero time)."""


class CronError(ValueError):
    """A schedule robfig/cron would not parse; ``str()`` is its message."""


@dataclass(frozen=True)
class Schedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    """Day of month or day of week is ``*``/``?``: both must match (robfig's star bit), else either."""

    def day_matches(self, t: datetime) -> bool:
        if t.month not in self.months:
            return False
        dom, dow = t.day in self.days, (t.isoweekday() % 7) in self.weekdays
        return (dom and dow) if self.any_day else (dom or dow)

    def matches(self, t: datetime) -> bool:
        return self.day_matches(t) and t.hour in self.hours and t.minute in self.minutes

    def next_after(self, t: datetime) -> datetime | None:
        """The first scheduled minute strictly after ``t`` (UTC), or None within five years."""
        t = t.astimezone(timezone.utc).replace(second=0, microsecond=0) + timedelta(minutes=1)
        end = t + timedelta(days=366 * _SEARCH_YEARS)
        while t < end:
            if not self.day_matches(t):
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                t += timedelta(minutes=1)
            else:
                return t
        return None

    def latest_at_or_before(self, t: datetime) -> datetime | None:
        """The last scheduled minute at or before ``t`` (UTC), or None within five years."""
        t = t.astimezone(timezone.utc).replace(second=0, microsecond=0)
        end = t - timedelta(days=366 * _SEARCH_YEARS)
        while t > end:
            if not self.day_matches(t):
                t = t.replace(hour=23, minute=59) - timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=59) - timedelta(hours=1)
            elif t.minute not in self.minutes:
                t -= timedelta(minutes=1)
            else:
                return t
        return None


def _number(text: str, names: dict[str, int] | None) -> int:
    if names and text.lower() in names:
        return names[text.lower()]
    if not text.isdigit():
        raise CronError(f'failed to parse int from {text}: strconv.Atoi: parsing "{text}": invalid syntax')
    return int(text)


def _field(text: str, lo: int, hi: int, names: dict[str, int] | None) -> tuple[frozenset[int], bool]:
    values: set[int] = set()
    star = False
    for part in text.split(","):
        range_text, _, step_text = part.partition("/")
        if range_text in ("*", "?"):
            start, end = lo, hi
            star = star or not step_text
        elif "-" in range_text:
            a, _, b = range_text.partition("-")
            start, end = _number(a, names), _number(b, names)
        else:
            start = end = _number(range_text, names)
            if step_text:
                end = hi
        step = _number(step_text, None) if step_text else 1
        if start < lo:
            raise CronError(f"beginning of range ({start}) below minimum ({lo}): {part}")
        if end > hi:
            raise CronError(f"end of range ({end}) above maximum ({hi}): {part}")
        if start > end:
            raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {part}")
        if step == 0:
            raise CronError(f"step of range should be a positive number: {part}")
        values.update(range(start, end + 1, step))
    return frozenset(values), star


def parse(schedule: str) -> Schedule:
    """A ``spec.schedule`` as ``cron.ParseStandard`` reads it; :class:`CronError` when it would not."""
    text = schedule.strip()
    if not text:
        raise CronError("empty spec string")
    if text.startswith("TZ=") or text.startswith("CRON_TZ="):
        # The API server refuses these itself (validateScheduleFormat), after robfig parses them.
        raise CronError("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
    if text.startswith("@"):
        if text not in _DESCRIPTORS:
            raise CronError(f"unrecognized descriptor: {text}")
        text = _DESCRIPTORS[text]
    parts = text.split()
    if len(parts) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(parts)}: [{' '.join(parts)}]")
    parsed = []
    stars = []
    for part, (_, lo, hi) in zip(parts, _FIELDS):
        names = _MONTHS if hi == 12 and lo == 1 else _DAYS if hi == 6 else None
        values, star = _field(part, lo, 7 if hi == 6 else hi, names)
        parsed.append(values)
        stars.append(star)
    weekdays = frozenset(d % 7 for d in parsed[4])  # robfig accepts 7 for Sunday
    return Schedule(parsed[0], parsed[1], parsed[2], parsed[3], weekdays, any_day=stars[2] or stars[4])


MAX_MISSED = 100
"""Missed start times beyond which the CronJob controller warns (``TooManyMissedTimes``)."""


def most_recent(schedule: Schedule, *, since: datetime, now: datetime) -> tuple[datetime | None, int]:
    """The latest scheduled time in (since, now] and how many were missed, counted up to
    ``MAX_MISSED + 1``: the CronJob controller's ``mostRecentScheduleTime`` (it starts only the
    most recent one)."""
    latest = schedule.latest_at_or_before(now)
    if latest is None or latest <= since:
        return None, 0
    missed = 0
    t = schedule.next_after(since)
    while t is not None and t <= latest and missed <= MAX_MISSED:
        missed += 1
        t = schedule.next_after(t)
    return latest, missed
