"""Vigil client for Python: ingest, query, aggregate, get and subscribe over the Vigil wire protocol.

    from vigil_client import Client

    with Client("127.0.0.1:7700") as client:           # token: argument or $VIGIL_TOKEN
        client.ingest([{"occurredAt": "2026-11-20T10:15:00Z", "tenant": "acme",
                        "actor": {"id": "u-42", "type": "USER"}, "action": "auth.login"}],
                      idempotency_key="batch-1")
        for event in client.query(tenants=["acme"], last="24h"):
            print(event.action)

See the package README for the whole API.
"""

from . import pb
from .batching import BatchingIngester
from .client import (
    DEFAULT,
    AggregateResult,
    Client,
    GroupCount,
    HistogramBucket,
    IngestResult,
    Page,
    QueryEvents,
    QueryPages,
    Subscription,
    SubscriptionItem,
    __version__,
)
from .connection import Call, Connection, parse_address
from .convert import event_to_dict, make_filter, to_duration, to_event, to_events, to_timestamp
from .errors import (
    Aborted,
    AlreadyExists,
    Cancelled,
    DataLoss,
    DeadlineExceeded,
    EventError,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ProtocolError,
    ResourceExhausted,
    StatusCode,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    Unknown,
    VigilConnectionError,
    VigilError,
    error_for_code,
)
from .wire import Method

#: Raised when the client cannot connect or the connection drops (a kind of `Unavailable`).
ConnectionError = VigilConnectionError  # noqa: A001 (shadows the builtin only inside this namespace)

__all__ = [
    "pb",
    "Client",
    "BatchingIngester",
    "IngestResult",
    "AggregateResult",
    "GroupCount",
    "HistogramBucket",
    "Page",
    "QueryPages",
    "QueryEvents",
    "Subscription",
    "SubscriptionItem",
    "DEFAULT",
    "Call",
    "Connection",
    "Method",
    "parse_address",
    "event_to_dict",
    "make_filter",
    "to_duration",
    "to_event",
    "to_events",
    "to_timestamp",
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
    "ConnectionError",
    "VigilConnectionError",
    "ProtocolError",
    "error_for_code",
    "__version__",
]
