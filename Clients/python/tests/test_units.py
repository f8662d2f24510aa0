"""Pieces that need no server: addresses, conversions, errors, zlib."""

from __future__ import annotations

import datetime as dt
import pickle
import zlib

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from vigil_client import (
    ConnectionError,
    DeadlineExceeded,
    EventError,
    InvalidArgument,
    NotFound,
    ProtocolError,
    ResourceExhausted,
    StatusCode,
    Unauthenticated,
    Unavailable,
    Unknown,
    VigilConnectionError,
    VigilError,
    error_for_code,
    event_to_dict,
    make_filter,
    parse_address,
    pb,
    to_duration,
    to_event,
    to_timestamp,
)
from vigil_client.convert import to_datetime
from vigil_client.wire import HEADER, PREFACE, FrameType, inflate


def test_preface_and_header_layout() -> None:
    assert PREFACE == bytes.fromhex("5647494c01000000")
    assert HEADER.size == 10
    assert HEADER.pack(5, FrameType.MESSAGE, 0x01, 3) == bytes.fromhex("00000005 03 01 00000003".replace(" ", ""))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("127.0.0.1:7700", ("127.0.0.1", 7700)),
        ("localhost", ("localhost", 7700)),
        ("[::1]:9000", ("::1", 9000)),
        ("[::1]", ("::1", 7700)),
        ("::1", ("::1", 7700)),  # a bare IPv6 address: no port
        (("example.test", 1), ("example.test", 1)),
    ],
)
def test_parse_address(text: object, expected: tuple) -> None:
    assert parse_address(text) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["", ":7700", "host:0", "host:x", "[::1", "[::1]x", "host:70000"])
def test_parse_address_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_address(text)


def test_error_classes_carry_codes() -> None:
    assert error_for_code(3) is InvalidArgument
    assert error_for_code(5) is NotFound
    assert error_for_code(16) is Unauthenticated
    assert error_for_code(99) is Unknown
    error = VigilError.from_status(8, "slow down", metadata={"vigil.retry-after-ms": "250"})
    assert isinstance(error, ResourceExhausted) and error.code == StatusCode.RESOURCE_EXHAUSTED
    assert error.retry_after_ms == 250 and error.from_server
    refused = VigilError.from_status(3, "bad", [EventError(2, "action", "is required")])
    assert refused.details == refused.event_errors == [EventError(2, "action", "is required")]
    assert "event 2: action: is required" in str(refused)
    assert ConnectionError is VigilConnectionError
    assert issubclass(VigilConnectionError, Unavailable)
    assert ProtocolError().code == StatusCode.INTERNAL
    assert DeadlineExceeded(message="late").code == 4
    copy = pickle.loads(pickle.dumps(refused))
    assert type(copy) is InvalidArgument and copy.event_errors == refused.event_errors and copy.from_server


def test_times_and_durations() -> None:
    stamp = to_timestamp(dt.datetime(2026, 11, 20, 10, 15, tzinfo=dt.timezone.utc))
    assert stamp.ToJsonString() == "2026-11-20T10:15:00Z"
    assert to_timestamp("2026-11-20").ToJsonString() == "2026-11-20T00:00:00Z"
    assert to_timestamp(dt.datetime(2026, 11, 20, 10, 15)).seconds == stamp.seconds  # naive: UTC
    assert to_timestamp(1.5).nanos == 500_000_000
    assert to_duration("24h").seconds == 86_400
    assert to_duration(dt.timedelta(minutes=30)).seconds == 1800
    assert to_duration(0.25).nanos == 250_000_000
    with pytest.raises(ValueError):
        to_duration("soon")
    with pytest.raises(ValueError):
        to_timestamp("yesterday")


@pytest.mark.parametrize(
    "seconds, expected",
    [
        (0.9999999999, (1, 0)),  # rounds up to the next second, never nanos=1e9
        (-0.9999999999, (-1, 0)),
        (-0.5, (-1, 500_000_000)),  # Timestamp nanos are never negative
        (1_700_000_000.25, (1_700_000_000, 250_000_000)),
        (2**40, (2**40, 0)),  # an int stays exact
    ],
)
def test_to_timestamp_keeps_nanos_in_range(seconds: float, expected: tuple) -> None:
    stamp = to_timestamp(seconds)
    assert (stamp.seconds, stamp.nanos) == expected


def test_to_datetime_refuses_times_outside_years_1_to_9999() -> None:
    last = to_timestamp("9999-12-31T23:59:59.999999999Z")
    assert to_datetime(last) == dt.datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.timezone.utc)
    first = to_timestamp("0001-01-01T00:00:00Z")
    assert to_datetime(first) == dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc)
    for seconds in (last.seconds + 1, first.seconds - 1, 2**63 - 1, -(2**63)):
        with pytest.raises(ProtocolError, match="outside years 1-9999"):
            to_datetime(Timestamp(seconds=seconds))


def test_make_filter() -> None:
    built = make_filter(
        {"actions": ["auth.*"]},
        tenants="acme",
        outcomes=["failure", "DENIED"],
        exclude_outcomes=[pb.Outcome.SUCCESS],
        actor_types="service",
        metadata={"env": ["prod", "staging"], "project": "alpha"},
        since="2026-11-01",
        last=None,
        search="bob",
    )
    assert list(built.actions) == ["auth.*"]
    assert list(built.tenants) == ["acme"]
    assert list(built.outcomes) == [pb.Outcome.FAILURE, pb.Outcome.DENIED]
    assert list(built.exclude_outcomes) == [pb.Outcome.SUCCESS]
    assert list(built.actor_types) == [pb.ActorType.SERVICE]
    assert list(built.metadata) == ["env=prod", "env=staging", "project=alpha"]
    assert built.since.ToJsonString() == "2026-11-01T00:00:00Z" and not built.HasField("last")
    assert built.search == "bob"
    with pytest.raises(TypeError):
        make_filter(tenant="acme")  # the field is `tenants`
    with pytest.raises(ValueError):
        make_filter(outcomes=["maybe"])


def test_events_from_dicts() -> None:
    event = to_event({
        "occurredAt": dt.datetime(2026, 11, 20, 10, 15, tzinfo=dt.timezone.utc),
        "tenant": "acme",
        "actor": {"id": "u-42", "type": "USER"},
        "action": "user.update",
        "changes": [{"field": "role", "old": "viewer", "new": "admin"}],
    })
    assert event.actor.type == pb.ActorType.USER and event.changes[0].new == "admin"
    assert event_to_dict(event)["occurredAt"] == "2026-11-20T10:15:00Z"
    with pytest.raises(InvalidArgument) as refused:
        to_event({"tenant": "acme", "actorr": {}}, index=7)
    assert refused.value.event_errors[0].index == 7 and not refused.value.from_server


def test_inflate_limits() -> None:
    data = b"a" * 10_000
    assert inflate(zlib.compress(data), 10_000) == data
    with pytest.raises(ResourceExhausted):
        inflate(zlib.compress(data), 9_999)
    with pytest.raises(InvalidArgument):
        inflate(b"not zlib", 100)
    with pytest.raises(InvalidArgument):
        inflate(zlib.compress(data)[:-3], 20_000)
    with pytest.raises(InvalidArgument):
        inflate(zlib.compress(data) + b"x", 20_000)
