"""Errors: every failed call raises a `VigilError` carrying a gRPC status code.

The server's `TRAILERS` (`vigil.v1.Status`) become the subclass for their code
(`InvalidArgument`, `NotFound`, ...). Failures the client sees on its own side
are `ConnectionError` (cannot connect, or the connection dropped: retryable,
like `UNAVAILABLE`) and `ProtocolError` (the peer broke the wire protocol).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Type

__all__ = [
    "StatusCode",
    "EventError",
    "VigilError",
    "Cancelled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
    "VigilConnectionError",
    "ProtocolError",
    "error_for_code",
]


class StatusCode(enum.IntEnum):
    """gRPC's status numbers, as carried by `Status.code` and `GoAway.code`."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16

    @classmethod
    def from_wire(cls, value: int) -> "StatusCode":
        """A number from the wire; numbers this version does not know are UNKNOWN."""
        try:
            return cls(value)
        except ValueError:
            return cls.UNKNOWN


@dataclass(frozen=True)
class EventError:
    """Why one event of a refused `Ingest` batch was refused."""

    index: int
    """Position of the event in the batch, from 0."""
    field: str
    """The field as a protobuf JSON path: ``actor.id``, ``metadata[region]``."""
    reason: str

    def __str__(self) -> str:
        return f"event {self.index}: {self.field}: {self.reason}"


class VigilError(Exception):
    """A call failed. `code` is never OK.

    Attributes:
        code: the `StatusCode`.
        message: the server's (or the client's) explanation.
        event_errors: for a refused `Ingest` batch, every bad event (also `details`).
        metadata: the trailers' metadata (``vigil.cursor``, ``vigil.retry-after-ms``, ...).
        from_server: True when the server sent this status (TRAILERS or GOAWAY);
            False when the client decided on its own (local deadline, connection lost,
            request too large to send, ...).
    """

    default_code: StatusCode = StatusCode.UNKNOWN

    def __init__(
        self,
        code: Optional[int] = None,
        message: str = "",
        *,
        event_errors: Sequence[EventError] = (),
        metadata: Optional[Mapping[str, str]] = None,
        from_server: bool = False,
    ) -> None:
        self.code: StatusCode = StatusCode.from_wire(code) if code is not None else self.default_code
        self.message: str = message
        self.event_errors: List[EventError] = list(event_errors)
        self.metadata: Dict[str, str] = dict(metadata or {})
        self.from_server: bool = from_server
        super().__init__(self.code, message)

    @property
    def details(self) -> List[EventError]:
        """Alias of `event_errors`."""
        return self.event_errors

    @property
    def cursor(self) -> Optional[str]:
        """The trailers' ``vigil.cursor``, when the server sent one (subscriptions do)."""
        return self.metadata.get("vigil.cursor") or None

    def __str__(self) -> str:
        text = f"{self.code.name}: {self.message}" if self.message else self.code.name
        if self.event_errors:
            shown = "; ".join(str(error) for error in self.event_errors[:5])
            more = len(self.event_errors) - 5
            text += f" [{shown}{f'; and {more} more' if more > 0 else ''}]"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code.name}, message={self.message!r})"

    def __reduce__(self):  # type: ignore[no-untyped-def]
        # Exceptions pickle through their args; keep the keyword-only fields too.
        return (
            _rebuild,
            (type(self), int(self.code), self.message, self.event_errors, self.metadata, self.from_server),
        )

    @staticmethod
    def from_status(
        code: int,
        message: str,
        event_errors: Sequence[EventError] = (),
        metadata: Optional[Mapping[str, str]] = None,
        *,
        from_server: bool = True,
    ) -> "VigilError":
        """The exception of the right subclass for a status."""
        cls = error_for_code(code)
        return cls(code, message, event_errors=event_errors, metadata=metadata, from_server=from_server)


def _rebuild(
    cls: Type[VigilError],
    code: int,
    message: str,
    event_errors: List[EventError],
    metadata: Dict[str, str],
    from_server: bool,
) -> VigilError:
    return cls(code, message, event_errors=event_errors, metadata=metadata, from_server=from_server)


class Cancelled(VigilError):
    default_code = StatusCode.CANCELLED


class Unknown(VigilError):
    default_code = StatusCode.UNKNOWN


class InvalidArgument(VigilError):
    """A bad request: a malformed filter, cursor, id, or invalid events (see `event_errors`)."""

    default_code = StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(VigilError):
    default_code = StatusCode.DEADLINE_EXCEEDED


class NotFound(VigilError):
    default_code = StatusCode.NOT_FOUND


class AlreadyExists(VigilError):
    default_code = StatusCode.ALREADY_EXISTS


class PermissionDenied(VigilError):
    default_code = StatusCode.PERMISSION_DENIED


class ResourceExhausted(VigilError):
    """A limit was hit: a frame or batch too large, too many calls, memory, a rate.

    Retry later (after `retry_after_ms` when the server says) or smaller.
    """

    default_code = StatusCode.RESOURCE_EXHAUSTED

    @property
    def retry_after_ms(self) -> Optional[int]:
        """The server's ``vigil.retry-after-ms`` hint, if it sent one."""
        value = self.metadata.get("vigil.retry-after-ms")
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None


class FailedPrecondition(VigilError):
    default_code = StatusCode.FAILED_PRECONDITION


class Aborted(VigilError):
    default_code = StatusCode.ABORTED


class OutOfRange(VigilError):
    default_code = StatusCode.OUT_OF_RANGE


class Unimplemented(VigilError):
    default_code = StatusCode.UNIMPLEMENTED


class Internal(VigilError):
    default_code = StatusCode.INTERNAL


class Unavailable(VigilError):
    """The server is shutting down or unreachable: retry on a new connection."""

    default_code = StatusCode.UNAVAILABLE


class DataLoss(VigilError):
    default_code = StatusCode.DATA_LOSS


class Unauthenticated(VigilError):
    default_code = StatusCode.UNAUTHENTICATED


class VigilConnectionError(Unavailable):
    """The client could not connect, or the connection dropped (code UNAVAILABLE).

    Exported as `vigil_client.ConnectionError`. Retryable; an `Ingest` whose
    answer was lost may or may not have been stored, so retry it with the same
    idempotency key.
    """


class ProtocolError(VigilError):
    """The peer broke the wire protocol (bad preface, unknown frame type, ...); code INTERNAL."""

    default_code = StatusCode.INTERNAL


_CLASSES: Dict[StatusCode, Type[VigilError]] = {
    StatusCode.CANCELLED: Cancelled,
    StatusCode.UNKNOWN: Unknown,
    StatusCode.INVALID_ARGUMENT: InvalidArgument,
    StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    StatusCode.NOT_FOUND: NotFound,
    StatusCode.ALREADY_EXISTS: AlreadyExists,
    StatusCode.PERMISSION_DENIED: PermissionDenied,
    StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    StatusCode.ABORTED: Aborted,
    StatusCode.OUT_OF_RANGE: OutOfRange,
    StatusCode.UNIMPLEMENTED: Unimplemented,
    StatusCode.INTERNAL: Internal,
    StatusCode.UNAVAILABLE: Unavailable,
    StatusCode.DATA_LOSS: DataLoss,
    StatusCode.UNAUTHENTICATED: Unauthenticated,
}


def error_for_code(code: int) -> Type[VigilError]:
    """The `VigilError` subclass raised for a status code (`Unknown` for numbers not known)."""
    return _CLASSES.get(StatusCode.from_wire(code), Unknown)
