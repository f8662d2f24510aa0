"""Conversions between Python values and the protocol's messages.

Events may be given as `pb.AuditEvent` messages or as dicts in the README's JSON
form (the protobuf JSON mapping: ``{"occurredAt": "2026-11-20T10:15:00Z",
"tenant": "acme", "actor": {"id": "u-42", "type": "USER"}, "action":
"user.create", ...}``); `datetime` values are accepted for the times. Filters
are built from keyword conditions named like `Filter`'s fields.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from . import pb
from .errors import EventError, InvalidArgument, ProtocolError

__all__ = [
    "EventLike",
    "FilterLike",
    "TimeLike",
    "DurationLike",
    "to_event",
    "to_events",
    "event_to_dict",
    "to_timestamp",
    "to_datetime",
    "to_duration",
    "make_filter",
    "enum_value",
    "FILTER_FIELDS",
]

EventLike = Union[pb.AuditEvent, Mapping[str, Any]]
FilterLike = Union[pb.Filter, Mapping[str, Any], None]
TimeLike = Union[_dt.datetime, _dt.date, str, int, float, Timestamp]
DurationLike = Union[_dt.timedelta, int, float, str, Duration]

_UTC = _dt.timezone.utc


def to_timestamp(value: TimeLike) -> Timestamp:
    """A `Timestamp` from a datetime (naive means UTC), a date (UTC midnight),
    an RFC 3339 string, a ``YYYY-MM-DD`` date string, or seconds since the epoch."""
    if isinstance(value, Timestamp):
        return value
    stamp = Timestamp()
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_UTC)
        delta = value - _dt.datetime(1970, 1, 1, tzinfo=_UTC)
        seconds = delta.days * 86_400 + delta.seconds
        stamp.seconds, stamp.nanos = seconds, delta.microseconds * 1000
        return stamp
    if isinstance(value, _dt.date):
        return to_timestamp(_dt.datetime(value.year, value.month, value.day, tzinfo=_UTC))
    if isinstance(value, int) and not isinstance(value, bool):
        stamp.seconds = value
        return stamp
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a time")
        # The fraction is exact (value * 1e9 would lose ~256 ns at today's epoch seconds);
        # divmod carries a fraction that rounds to 1e9 ns (0.9999999999) into the seconds.
        seconds = math.floor(value)
        carry, nanos = divmod(int(round((value - seconds) * 1e9)), 1_000_000_000)
        stamp.seconds, stamp.nanos = seconds + carry, nanos
        return stamp
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            text += "T00:00:00Z"
        try:
            stamp.FromJsonString(text)
        except ValueError:
            raise ValueError(f"{value!r} is not an RFC 3339 time (2026-11-20T10:15:00Z) or a date (2026-11-20)") from None
        return stamp
    raise TypeError(f"cannot make a time of {type(value).__name__}")


def to_datetime(stamp: Timestamp) -> _dt.datetime:
    """A timezone-aware (UTC) datetime; microsecond precision.

    Raises `ProtocolError` for a time outside years 1–9999: a valid `Timestamp` never
    is (that is its defined range, and datetime's), so the server sent a broken one.
    """
    try:
        return _dt.datetime(1970, 1, 1, tzinfo=_UTC) + _dt.timedelta(seconds=stamp.seconds, microseconds=stamp.nanos // 1000)
    except OverflowError:
        raise ProtocolError(
            message=f"the server sent a time outside years 1-9999 (Timestamp seconds={stamp.seconds}, nanos={stamp.nanos})"
        ) from None


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def to_duration(value: DurationLike) -> Duration:
    """A `Duration` from a timedelta, seconds, or text: ``90s``, ``30m``, ``24h``, ``7d``, ``2w``
    (also the protobuf JSON form ``1.5s``)."""
    if isinstance(value, Duration):
        return value
    duration = Duration()
    if isinstance(value, _dt.timedelta):
        duration.FromTimedelta(value)
        return duration
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        duration.FromNanoseconds(int(round(value * 1e9)))
        return duration
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", value)
        if not match:
            raise ValueError(f"{value!r} is not a duration like 90s, 30m, 24h, 7d or 2w")
        duration.FromNanoseconds(int(round(float(match.group(1)) * _UNITS[match.group(2)] * 1e9)))
        return duration
    raise TypeError(f"cannot make a duration of {type(value).__name__}")


def enum_value(enum: Any, value: Union[int, str], prefix: str = "", aliases: Optional[Mapping[str, str]] = None) -> int:
    """An enum number from a number or a name, case-insensitive, with an optional
    name prefix (``"action"`` → ``GROUP_BY_ACTION``) or aliases."""
    if isinstance(value, bool):
        raise TypeError("a bool is not an enum value")
    if isinstance(value, int):
        return value
    name = str(value).strip().upper().replace("-", "_")
    if aliases and name.lower() in aliases:
        name = aliases[name.lower()]
    for candidate in (name, prefix + name):
        try:
            return int(enum.Value(candidate))
        except ValueError:
            continue
    names = ", ".join(n[len(prefix):] if prefix and n.startswith(prefix) else n for n in enum.keys())
    raise ValueError(f"{value!r} is not one of {names}")


def _plain_json(value: Any) -> Any:
    """Datetimes and dates become RFC 3339 strings, recursively (for ParseDict)."""
    if isinstance(value, _dt.datetime):
        return to_timestamp(value).ToJsonString()
    if isinstance(value, _dt.date):
        return to_timestamp(value).ToJsonString()
    if isinstance(value, Mapping):
        return {key: _plain_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_json(item) for item in value]
    return value


def to_event(event: EventLike, index: int = 0) -> pb.AuditEvent:
    """An `AuditEvent` from a message (returned as is) or a dict in the JSON form.

    A dict that is not an event raises `InvalidArgument` (from the client, not
    the server) whose `event_errors` name `index`.
    """
    if isinstance(event, pb.AuditEvent):
        return event
    if isinstance(event, Mapping):
        try:
            return json_format.ParseDict(_plain_json(event), pb.AuditEvent())
        except (json_format.ParseError, ValueError, TypeError) as error:
            raise InvalidArgument(
                message=f"event {index} is not an AuditEvent in the JSON form: {error}",
                event_errors=[EventError(index, "", str(error))],
            ) from None
    raise TypeError(f"event {index}: expected a vigil_client.pb.AuditEvent or a dict, not {type(event).__name__}")


def to_events(events: Iterable[EventLike]) -> List[pb.AuditEvent]:
    return [to_event(event, index) for index, event in enumerate(events)]


def event_to_dict(event: pb.AuditEvent) -> Dict[str, Any]:
    """The README's JSON form of an event (lowerCamelCase, enums by name, RFC 3339 times)."""
    return json_format.MessageToDict(event)


_STRING_LISTS = (
    "tenants", "actor_ids", "actions", "resource_types", "resource_ids", "actor_emails",
    "actor_names", "resource_names", "source_ips", "trace_ids", "request_ids",
)
_ENUM_LISTS = {
    "outcomes": pb.Outcome,
    "exclude_outcomes": pb.Outcome,
    "actor_types": pb.ActorType,
    "categories": pb.Category,
}
#: The keyword conditions `make_filter` (and every query method) accepts.
FILTER_FIELDS = frozenset(_STRING_LISTS) | frozenset(_ENUM_LISTS) | {"since", "until", "last", "metadata", "search"}


def _as_list(value: Any) -> Sequence[Any]:
    if isinstance(value, (str, bytes, int)) or not isinstance(value, Iterable):
        return [value]
    return list(value)


def make_filter(filter: FilterLike = None, **conditions: Any) -> pb.Filter:
    """A `Filter` from a message or a dict in its JSON form, plus keyword conditions.

    Conditions are `Filter`'s field names: ``since``/``until`` (datetime, RFC 3339
    text or a date), ``last`` (timedelta, seconds or ``"24h"``), the lists
    ``tenants``, ``actor_ids``, ``actions``, ... (a single string is a list of one),
    ``outcomes``/``exclude_outcomes``/``actor_types``/``categories`` (names such as
    ``"FAILURE"`` or numbers), ``metadata`` (``["env=prod"]`` or ``{"env": "prod"}``,
    a value may be a list) and ``search``. None values are ignored.
    """
    result = pb.Filter()
    if isinstance(filter, pb.Filter):
        result.CopyFrom(filter)
    elif isinstance(filter, Mapping):
        try:
            json_format.ParseDict(_plain_json(filter), result)
        except json_format.ParseError as error:
            raise ValueError(f"filter is not a Filter in the JSON form: {error}") from None
    elif filter is not None:
        raise TypeError(f"filter must be a vigil_client.pb.Filter or a dict, not {type(filter).__name__}")
    for name, value in conditions.items():
        if value is None:
            continue
        if name not in FILTER_FIELDS:
            raise TypeError(f"unknown filter condition {name!r}; known: {', '.join(sorted(FILTER_FIELDS))}")
        if name in ("since", "until"):
            getattr(result, name).CopyFrom(to_timestamp(value))
        elif name == "last":
            result.last.CopyFrom(to_duration(value))
        elif name == "search":
            result.search = str(value)
        elif name == "metadata":
            entries: List[str] = []
            if isinstance(value, Mapping):
                for key, wanted in value.items():
                    entries += [f"{key}={item}" for item in _as_list(wanted)]
            else:
                entries = [str(item) for item in _as_list(value)]
            result.metadata.extend(entries)
        elif name in _ENUM_LISTS:
            getattr(result, name).extend(enum_value(_ENUM_LISTS[name], item) for item in _as_list(value))
        else:
            getattr(result, name).extend(str(item) for item in _as_list(value))
    return result
