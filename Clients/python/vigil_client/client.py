"""The synchronous Vigil client.

    with Client("127.0.0.1:7700", token=...) as client:
        result = client.ingest([{"occurredAt": "2026-11-20T10:15:00Z", "tenant": "acme",
                                 "actor": {"id": "u-42", "type": "USER"}, "action": "auth.login"}])
        for event in client.query(tenants=["acme"], actions=["auth.*"], last="24h"):
            print(event.seq, event.action)

A `Client` holds one connection at a time, opened on first use and opened again
when it drops or the server sends GOAWAY; calls from many threads are
multiplexed on it. Every method raises `VigilError` subclasses.
"""

from __future__ import annotations

import datetime as _dt
import os
import random
import threading
import time
from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Optional,
    Tuple,
    Type,
    TypeVar,
    Union,
)

from google.protobuf.message import DecodeError, Message

from . import pb
from .connection import DEFAULT_MAX_FRAME_SIZE, DEFAULT_SEND_TIMEOUT, TIMEOUT, Call, Connection, parse_address
from .convert import (
    DurationLike,
    EventLike,
    FilterLike,
    TimeLike,
    enum_value,
    make_filter,
    to_datetime,
    to_duration,
    to_events,
    to_timestamp,
)
from .errors import (
    Internal,
    ProtocolError,
    ResourceExhausted,
    Unavailable,
    VigilConnectionError,
    VigilError,
)
from .wire import Method

__all__ = [
    "Client",
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
]

__version__ = "0.1.0"

M = TypeVar("M", bound=Message)


class _Default:
    """The type of `DEFAULT`: "use the client's timeout"."""

    def __repr__(self) -> str:
        return "DEFAULT"


#: For a `timeout` argument: the client's default timeout (None means no deadline).
DEFAULT = _Default()
TimeoutArg = Union[float, None, _Default]


@dataclass(frozen=True)
class IngestResult:
    """The answer to an `Ingest`: the batch holds the seqs `first_seq` … `last_seq`."""

    first_seq: int
    last_seq: int
    count: int
    received_at: _dt.datetime
    #: True when this is the stored answer to an earlier batch with the same key.
    replayed: bool
    leaf_hashes: List[bytes] = field(default_factory=list)
    chain_head: bytes = b""
    raw: pb.IngestResponse = field(default_factory=pb.IngestResponse, repr=False, compare=False)

    @classmethod
    def from_proto(cls, response: pb.IngestResponse) -> "IngestResult":
        return cls(
            first_seq=response.first_seq,
            last_seq=response.last_seq,
            count=response.count,
            received_at=to_datetime(response.received_at),
            replayed=response.replayed,
            leaf_hashes=list(response.leaf_hashes),
            chain_head=response.chain_head,
            raw=response,
        )


@dataclass(frozen=True)
class GroupCount:
    key: str
    count: int


@dataclass(frozen=True)
class HistogramBucket:
    start: _dt.datetime
    count: int


@dataclass(frozen=True)
class AggregateResult:
    """Matching events: `count`; with group_by the top `groups` (largest first),
    `other_count` beyond them and `group_total` groups in all; with a histogram
    interval one bucket per interval, oldest first."""

    count: int
    groups: List[GroupCount]
    other_count: int
    group_total: int
    histogram: List[HistogramBucket]
    #: The trailers' scan statistics (``vigil.rows-examined``, ...).
    metadata: Dict[str, str] = field(default_factory=dict)
    raw: pb.AggregateResponse = field(default_factory=pb.AggregateResponse, repr=False, compare=False)


@dataclass(frozen=True)
class Page:
    """One `QueryResponse`: its events and the cursor that resumes after the last."""

    events: List[pb.AuditEvent]
    cursor: str

    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self) -> Iterator[pb.AuditEvent]:
        return iter(self.events)


@dataclass(frozen=True)
class SubscriptionItem:
    """An event or a heartbeat (``event is None``), with the cursor that resumes after it."""

    event: Optional[pb.AuditEvent]
    cursor: str
    heartbeat_at: Optional[_dt.datetime] = None

    @property
    def is_heartbeat(self) -> bool:
        return self.event is None


_ORDERS = {"newest": "NEWEST_FIRST", "oldest": "OLDEST_FIRST", "desc": "NEWEST_FIRST", "asc": "OLDEST_FIRST"}
_GROUP_BY = {"actor_id": "ACTOR", "ip": "SOURCE_IP", "resource": "RESOURCE_TYPE"}


class Client:
    """A connection (re-opened as needed) to a Vigil server.

    Args:
        address: ``HOST:PORT`` (``[::1]:7700``, a bare host means port 7700) or ``(host, port)``.
        token: the API token sent in HELLO; defaults to ``$VIGIL_TOKEN`` (empty: anonymous).
        timeout: the default deadline of each call in seconds, sent as
            ``CallHeaders.timeout_ms`` (None: no deadline). Subscriptions have
            none unless given one.
        client_name: names this client in the server's logs.
        connect_timeout: seconds to connect and complete the handshake.
        max_frame_size: the largest frame accepted from the server (announced in HELLO).
        compress_min_bytes: zlib-compress request messages at least this large
            (None: only requests that would not fit the server's frame limit otherwise).
        send_timeout: seconds a write to the server may make no progress (the
            server not reading) before the connection fails with `ConnectionError`
            (None: no bound).
    """

    def __init__(
        self,
        address: Union[str, Tuple[str, int]] = "127.0.0.1:7700",
        token: Optional[str] = None,
        timeout: Optional[float] = 30.0,
        *,
        client_name: Optional[str] = None,
        connect_timeout: float = 10.0,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        compress_min_bytes: Optional[int] = None,
        send_timeout: Optional[float] = DEFAULT_SEND_TIMEOUT,
    ) -> None:
        if send_timeout is not None and not send_timeout > 0:
            raise ValueError("send_timeout must be positive (or None: no bound)")
        self.host, self.port = parse_address(address)
        self.token: str = token if token is not None else os.environ.get("VIGIL_TOKEN", "")
        self.timeout = timeout
        self.client_name = client_name or f"vigil-python/{__version__}"
        self.connect_timeout = connect_timeout
        self.max_frame_size = max_frame_size
        self.compress_min_bytes = compress_min_bytes
        self.send_timeout = send_timeout
        self._lock = threading.Lock()
        self._connection_: Optional[Connection] = None
        self._draining: List[Connection] = []
        self._closed = False
        self._welcome: Optional[pb.Welcome] = None

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    # MARK: Connection

    def connect(self) -> pb.Welcome:
        """Opens the connection now (otherwise the first call does); returns the server's `Welcome`."""
        return self.connection().welcome

    @property
    def welcome(self) -> pb.Welcome:
        """The server's limits and our principal, from the latest handshake (connects if there was none)."""
        if self._welcome is None:
            self.connect()
        assert self._welcome is not None
        return self._welcome

    def connection(self) -> Connection:
        """The current connection, opening a new one if there is none or it can take no new calls."""
        with self._lock:
            if self._closed:
                raise VigilConnectionError(message="the client is closed")
            current = self._connection_
            if current is not None and current.usable:
                return current
            if current is not None and not current.closed:
                self._draining.append(current)  # GOAWAY: calls in flight finish there
            self._draining = [c for c in self._draining if not c.closed]
            self._connection_ = None
            self._connection_ = Connection(
                self.host,
                self.port,
                token=self.token,
                client_name=self.client_name,
                connect_timeout=self.connect_timeout,
                max_frame_size=self.max_frame_size,
                compress_min_bytes=self.compress_min_bytes,
                send_timeout=self.send_timeout,
            )
            self._welcome = self._connection_.welcome
            return self._connection_

    def reset(self) -> None:
        """Closes the current connection (calls on it fail); the next call opens a new one."""
        with self._lock:
            current, self._connection_ = self._connection_, None
        if current is not None:
            current.close()

    def close(self) -> None:
        """Closes every connection; calls in flight fail with `ConnectionError`."""
        with self._lock:
            self._closed = True
            connections = [c for c in [self._connection_, *self._draining] if c is not None]
            self._connection_ = None
            self._draining = []
        for connection in connections:
            connection.close()

    def __enter__(self) -> "Client":
        self.connect()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def ping(self, timeout: float = 10.0) -> float:
        """PING → PONG; the round trip in seconds."""
        return self.connection().ping(timeout)

    def _timeout(self, timeout: TimeoutArg) -> Optional[float]:
        if isinstance(timeout, _Default):
            return self.timeout
        return timeout

    # MARK: Calls

    def open_call(
        self,
        method: str,
        request: Message,
        *,
        streaming: bool = False,
        timeout: TimeoutArg = DEFAULT,
        initial_window: Optional[int] = None,
    ) -> Call:
        """Opens a call on the current connection (low level; see `Call`)."""
        return self.connection().open_call(
            method,
            request.SerializeToString(),
            streaming=streaming,
            timeout=self._timeout(timeout),
            initial_window=initial_window,
        )

    def unary(self, method: str, request: Message, response_type: Type[M], *, timeout: TimeoutArg = DEFAULT) -> M:
        """Any unary method: one request, one response (e.g. ``Method.VERIFY`` with `pb.VerifyRequest`)."""
        call = self.open_call(method, request, timeout=timeout)
        data: Optional[bytes] = None
        try:
            while True:
                item = call.receive()
                if item is None:
                    break
                assert isinstance(item, bytes)
                data = item
        finally:
            call.cancel()
        if data is None:
            raise Internal(message=f"the server ended {method} without a response")
        try:
            return response_type.FromString(data)
        except DecodeError as error:
            raise ProtocolError(message=f"the {method} response could not be decoded: {error}") from None

    def ingest(
        self,
        events: Iterable[EventLike],
        idempotency_key: Optional[str] = None,
        *,
        want_receipts: bool = False,
        timeout: TimeoutArg = DEFAULT,
    ) -> IngestResult:
        """Stores a batch atomically (all events or none) and returns once it is durable.

        Events are `pb.AuditEvent` messages or dicts in the JSON form. With an
        `idempotency_key`, sending the batch again (after an error or a dropped
        connection) stores nothing twice and answers `replayed=True`. A refused
        batch raises `InvalidArgument` whose `event_errors` list every bad event.
        """
        request = pb.IngestRequest(events=to_events(events), idempotency_key=idempotency_key or "")
        if want_receipts:
            request.want_receipts = True
        return IngestResult.from_proto(self.unary(Method.INGEST, request, pb.IngestResponse, timeout=timeout))

    def health(self, *, timeout: TimeoutArg = DEFAULT) -> pb.HealthResponse:
        """Whether the server serves: `status` is `pb.HealthResponse.SERVING`, or
        `NOT_SERVING` with the `reasons` (a full data disk, shutting down, …).
        Any token may ask; no scope is needed."""
        return self.unary(Method.HEALTH, pb.HealthRequest(), pb.HealthResponse, timeout=timeout)

    def get(self, id: str, *, timeout: TimeoutArg = DEFAULT) -> pb.AuditEvent:
        """One event by id; raises `NotFound` when there is none (`InvalidArgument` for a non-UUID)."""
        return self.unary(Method.GET, pb.GetRequest(id=id), pb.GetResponse, timeout=timeout).event

    def aggregate(
        self,
        filter: FilterLike = None,
        *,
        group_by: Union[str, int, None] = None,
        top: int = 0,
        histogram_interval: Optional[DurationLike] = None,
        timeout: TimeoutArg = DEFAULT,
        **conditions: Any,
    ) -> AggregateResult:
        """Counts matching events; `group_by` ("action", "actor", "resource_type",
        "outcome", "tenant", "category", "source_ip") adds the `top` largest groups;
        `histogram_interval` (timedelta, seconds or "1h") adds a time histogram."""
        request = pb.AggregateRequest(filter=make_filter(filter, **conditions), top=top)
        if group_by is not None:
            request.group_by = enum_value(pb.GroupBy, group_by, prefix="GROUP_BY_", aliases=_GROUP_BY)  # type: ignore[assignment]
        if histogram_interval is not None:
            request.histogram_interval.CopyFrom(to_duration(histogram_interval))
        call = self.open_call(Method.AGGREGATE, request, timeout=timeout)
        data: Optional[bytes] = None
        try:
            while True:
                item = call.receive()
                if item is None:
                    break
                assert isinstance(item, bytes)
                data = item
        finally:
            call.cancel()
        if data is None:
            raise Internal(message="the server ended Aggregate without a response")
        try:
            response = pb.AggregateResponse.FromString(data)
        except DecodeError as error:
            raise ProtocolError(message=f"the Aggregate response could not be decoded: {error}") from None
        return AggregateResult(
            count=response.count,
            groups=[GroupCount(g.key, g.count) for g in response.groups],
            other_count=response.other_count,
            group_total=response.group_total,
            histogram=[HistogramBucket(to_datetime(b.start), b.count) for b in response.histogram],
            metadata=dict(call.metadata),
            raw=response,
        )

    def query_request(
        self,
        filter: FilterLike = None,
        *,
        order: Union[str, int] = "newest",
        limit: int = 0,
        page_size: int = 0,
        cursor: Optional[str] = None,
        **conditions: Any,
    ) -> pb.QueryRequest:
        """The `QueryRequest` that `query` and `query_pages` send."""
        return pb.QueryRequest(
            filter=make_filter(filter, **conditions),
            order=enum_value(pb.Order, order, aliases=_ORDERS),  # type: ignore[arg-type]
            limit=limit,
            page_size=page_size,
            cursor=cursor or "",
        )

    def query_pages(
        self,
        filter: FilterLike = None,
        *,
        order: Union[str, int] = "newest",
        limit: int = 0,
        page_size: int = 0,
        cursor: Optional[str] = None,
        window: int = 4,
        timeout: TimeoutArg = DEFAULT,
        **conditions: Any,
    ) -> "QueryPages":
        """The pages of a query, each with the cursor that resumes after it.

        `order` is "newest" (default) or "oldest"; `limit` caps the events of the
        call (0: all); `page_size` 1–10,000 (0: the server's 500); `cursor`
        resumes an earlier query with the same filter and order. Up to `window`
        pages are in flight; more are granted as pages are consumed.
        """
        request = self.query_request(filter, order=order, limit=limit, page_size=page_size, cursor=cursor, **conditions)
        return QueryPages(self, request, window=window, timeout=self._timeout(timeout))

    def query(
        self,
        filter: FilterLike = None,
        *,
        order: Union[str, int] = "newest",
        limit: int = 0,
        page_size: int = 0,
        cursor: Optional[str] = None,
        window: int = 4,
        timeout: TimeoutArg = DEFAULT,
        **conditions: Any,
    ) -> "QueryEvents":
        """The events of a query, in order, fetched page by page (see `query_pages`)."""
        return QueryEvents(
            self.query_pages(
                filter, order=order, limit=limit, page_size=page_size, cursor=cursor, window=window,
                timeout=timeout, **conditions,
            )
        )

    def resume(self, cursor: str, like: Union["QueryPages", pb.QueryRequest], *, limit: Optional[int] = None) -> "QueryPages":
        """The query `like` (its filter, order, page size, limit unless given), continued after `cursor`."""
        request = pb.QueryRequest()
        request.CopyFrom(like.request if isinstance(like, QueryPages) else like)
        request.cursor = cursor
        if limit is not None:
            request.limit = limit
        window = like.window if isinstance(like, QueryPages) else 4
        timeout = like.timeout if isinstance(like, QueryPages) else self.timeout
        return QueryPages(self, request, window=window, timeout=timeout)

    def subscribe(
        self,
        filter: FilterLike = None,
        *,
        since: Optional[TimeLike] = None,
        cursor: Optional[str] = None,
        from_now: bool = False,
        window: int = 64,
        resume: bool = True,
        max_retries: Optional[int] = None,
        backoff: Tuple[float, float] = (0.1, 5.0),
        on_reconnect: Optional[Callable[[VigilError, int, float, Optional[str]], None]] = None,
        keepalive: float = 30.0,
        timeout: Optional[float] = None,
        **conditions: Any,
    ) -> "Subscription":
        """Follows the matching events: stored ones first (from `since` a time or
        after `cursor`), then live ones, in seq order. Default: from now.

        With `resume` (the default) a dropped connection, a server restart, a
        graceful shutdown (UNAVAILABLE) or falling behind (RESOURCE_EXHAUSTED)
        is survived: the subscription reconnects with capped exponential
        backoff (`backoff` = first and largest delay in seconds; `max_retries`
        consecutive failures, None: forever) and resumes from the last cursor,
        never yielding an event twice. `on_reconnect(error, attempt, delay,
        cursor)` is told of each interruption. A connection silent for
        `keepalive` seconds is checked with a PING. `timeout` is a deadline for
        each call (None: none).

        Started from now, a subscription has no position before its first
        message; start `since` a time or from a cursor when even that moment
        must not be missed.
        """
        request = pb.SubscribeRequest(filter=make_filter(filter, **conditions))
        starts = sum(1 for given in (since is not None, bool(cursor), from_now) if given)
        if starts > 1:
            raise ValueError("give at most one of since, cursor and from_now")
        if since is not None:
            request.since.CopyFrom(to_timestamp(since))
        elif cursor:
            request.cursor = cursor
        else:
            request.from_now = True
        return Subscription(
            self, request, window=window, resume=resume, max_retries=max_retries, backoff=backoff,
            on_reconnect=on_reconnect, keepalive=keepalive, timeout=timeout,
        )

    def __repr__(self) -> str:
        return f"<vigil_client.Client {self.address}>"


def _int_metadata(metadata: Dict[str, str]) -> Dict[str, int]:
    stats: Dict[str, int] = {}
    for key, value in metadata.items():
        if key.startswith("vigil.") and value.isdigit():
            stats[key[len("vigil."):]] = int(value)
    return stats


class QueryPages(Iterator[Page]):
    """Iterator over the pages (`Page`) of one `Query` call.

    `cursor` resumes after the last page yielded (after the end: the trailers'
    ``vigil.cursor``); `metadata` holds the trailers once the call ended
    (`stats`, `exhausted`). `resume()` continues from `cursor` in a new call.
    Close it (or use it as a context manager) to cancel a call not read to its end.
    """

    def __init__(self, client: Client, request: pb.QueryRequest, *, window: int = 4, timeout: Optional[float] = None) -> None:
        self.client = client
        self.request = request
        self.window = max(1, window)
        self.timeout = timeout
        self.cursor: Optional[str] = request.cursor or None
        self.metadata: Dict[str, str] = {}
        self.pages = 0
        self.events = 0
        self.done = False
        self._call: Optional[Call] = None

    def __iter__(self) -> "QueryPages":
        return self

    def __next__(self) -> Page:
        if self.done:
            raise StopIteration
        try:
            if self._call is None:
                self._call = self.client.open_call(
                    Method.QUERY, self.request, streaming=True, timeout=self.timeout, initial_window=self.window
                )
            data = self._call.receive()
        except BaseException:
            self.close()
            raise
        if data is None:
            self.done = True
            self.metadata = dict(self._call.metadata)
            self.cursor = self.metadata.get("vigil.cursor") or self.cursor
            self._call = None
            raise StopIteration
        assert isinstance(data, bytes)
        try:
            response = pb.QueryResponse.FromString(data)
        except DecodeError as error:
            self.close()
            raise ProtocolError(message=f"a QueryResponse could not be decoded: {error}") from None
        self._call.grant(1)
        self.pages += 1
        self.events += len(response.events)
        if response.cursor:
            self.cursor = response.cursor
        return Page(list(response.events), response.cursor)

    @property
    def exhausted(self) -> Optional[bool]:
        """Whether the result was read to its end (None until the trailers arrived)."""
        value = self.metadata.get("vigil.exhausted")
        return None if value is None else value == "true"

    @property
    def stats(self) -> Dict[str, int]:
        """The trailers' numbers without the ``vigil.`` prefix: ``rows-examined``, ``blocks-scanned``, ..."""
        return _int_metadata(self.metadata)

    def resume(self, limit: Optional[int] = None) -> "QueryPages":
        """The same query again, continuing after `cursor` (limit: the original unless given)."""
        if self.cursor is None:
            raise ValueError("there is no cursor to resume from yet")
        return self.client.resume(self.cursor, self, limit=limit)

    def close(self) -> None:
        """Cancels the call if it is still open."""
        if self._call is not None:
            self._call.cancel()
            self._call = None
        self.done = True

    def __enter__(self) -> "QueryPages":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __del__(self) -> None:
        call = getattr(self, "_call", None)
        if call is not None:
            call.abandon()


class QueryEvents(Iterator[pb.AuditEvent]):
    """Iterator over the events of a query (see `QueryPages`, available as `pages`).

    `cursor` resumes after the last page whose events were all yielded.
    """

    def __init__(self, pages: QueryPages) -> None:
        self.pages = pages
        self.cursor: Optional[str] = pages.cursor
        self._page: Optional[Page] = None
        self._index = 0

    def __iter__(self) -> "QueryEvents":
        return self

    def __next__(self) -> pb.AuditEvent:
        while self._page is None or self._index >= len(self._page.events):
            try:
                self._page = next(self.pages)
            except StopIteration:
                self.cursor = self.pages.cursor
                raise
            self._index = 0
        event = self._page.events[self._index]
        self._index += 1
        if self._index == len(self._page.events):
            self.cursor = self._page.cursor
        return event

    @property
    def metadata(self) -> Dict[str, str]:
        return self.pages.metadata

    @property
    def stats(self) -> Dict[str, int]:
        return self.pages.stats

    def close(self) -> None:
        self.pages.close()

    def __enter__(self) -> "QueryEvents":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class Subscription(Iterator[pb.AuditEvent]):
    """A live subscription. Iterating yields events (heartbeats are consumed);
    `items()` / `next_item()` also yield heartbeats. `cursor` resumes after the
    last item; `last_seq` is the seq of the last event yielded. See
    `Client.subscribe`."""

    def __init__(
        self,
        client: Client,
        request: pb.SubscribeRequest,
        *,
        window: int = 64,
        resume: bool = True,
        max_retries: Optional[int] = None,
        backoff: Tuple[float, float] = (0.1, 5.0),
        on_reconnect: Optional[Callable[[VigilError, int, float, Optional[str]], None]] = None,
        keepalive: float = 30.0,
        timeout: Optional[float] = None,
    ) -> None:
        self.client = client
        self.request = request
        self.window = max(1, window)
        self.resume = resume
        self.max_retries = max_retries
        self.backoff = backoff
        self.on_reconnect = on_reconnect
        self.keepalive = keepalive
        self.timeout = timeout
        self.cursor: Optional[str] = request.cursor if request.WhichOneof("start") == "cursor" else None
        self.last_seq = 0
        #: Interruptions survived so far.
        self.reconnects = 0
        self._failures = 0
        self._opened = False
        self._call: Optional[Call] = None
        self._consumed = 0
        self._closed = False
        self._stop = threading.Event()
        self._last_activity = time.monotonic()

    def __iter__(self) -> "Subscription":
        return self

    def __next__(self) -> pb.AuditEvent:
        while True:
            item = self._next(None)
            if item is None:
                raise StopIteration
            if item.event is not None:
                return item.event

    def items(self) -> Iterator[SubscriptionItem]:
        """Events and heartbeats."""
        while True:
            item = self._next(None)
            if item is None:
                return
            yield item

    def next_item(self, timeout: Optional[float] = None) -> Optional[SubscriptionItem]:
        """The next event or heartbeat, or None if `timeout` seconds passed first
        (or the subscription ended)."""
        return self._next(timeout)

    def next_event(self, timeout: Optional[float] = None) -> Optional[pb.AuditEvent]:
        """The next event (heartbeats skipped), or None if `timeout` seconds passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            item = self._next(left)
            if item is None:
                return None
            if item.event is not None:
                return item.event

    def _open(self) -> None:
        request = pb.SubscribeRequest()
        request.CopyFrom(self.request)
        if self.cursor:
            request.cursor = self.cursor
        self._call = self.client.open_call(
            Method.SUBSCRIBE, request, streaming=True, timeout=self.timeout, initial_window=self.window
        )
        self._consumed = 0
        self._last_activity = time.monotonic()
        if self._opened:
            self.reconnects += 1
        self._opened = True

    def _next(self, timeout: Optional[float]) -> Optional[SubscriptionItem]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._closed:
                return None
            try:
                if self._call is None:
                    self._open()
                assert self._call is not None
                wait = self.keepalive
                if deadline is not None:
                    wait = min(wait, max(0.0, deadline - time.monotonic()))
                data = self._call.receive(timeout=wait)
            except VigilError as error:
                self._failed(error)
                continue
            if data is TIMEOUT:
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                if time.monotonic() - self._last_activity >= self.keepalive:
                    self._check_alive()
                continue
            if data is None:  # the server ended the subscription with OK
                self._call = None
                self._closed = True
                return None
            assert isinstance(data, bytes)
            self._last_activity = time.monotonic()
            try:
                response = pb.SubscribeResponse.FromString(data)
            except DecodeError as error:
                self.close()
                raise ProtocolError(message=f"a SubscribeResponse could not be decoded: {error}") from None
            self._consumed += 1
            if self._consumed >= max(1, self.window // 2):
                try:
                    self._call.grant(self._consumed)
                except VigilError:
                    pass  # the call fails on its own; the next receive says how
                self._consumed = 0
            self._failures = 0
            if response.cursor:
                self.cursor = response.cursor
            kind = response.WhichOneof("item")
            if kind == "event":
                if response.event.seq <= self.last_seq:
                    continue  # already yielded before a resume
                self.last_seq = response.event.seq
                return SubscriptionItem(response.event, response.cursor)
            if kind == "heartbeat":
                try:
                    at = to_datetime(response.heartbeat.at)
                except ProtocolError:  # a time no datetime holds: end like an undecodable message
                    self.close()
                    raise
                return SubscriptionItem(None, response.cursor, at)

    def _check_alive(self) -> None:
        """Nothing arrived for `keepalive` seconds: PING; a silent connection is dropped (and resumed)."""
        self._last_activity = time.monotonic()
        call = self._call
        if call is None:
            return
        try:
            call.connection.ping(timeout=min(10.0, self.keepalive))
        except VigilError:
            call.connection.close()

    def _retryable(self, error: VigilError) -> bool:
        if isinstance(error, Unavailable):  # includes ConnectionError and GOAWAY
            return True
        # Fell behind the live stream: the trailers carry the cursor to resume from.
        return isinstance(error, ResourceExhausted) and error.from_server and error.cursor is not None

    def _failed(self, error: VigilError) -> None:
        call, self._call = self._call, None
        if call is not None:
            call.cancel()
        if error.cursor:
            self.cursor = error.cursor
        if self._closed:
            return
        if not self.resume or not self._opened or not self._retryable(error):
            self._closed = True
            raise error
        self._failures += 1
        if self.max_retries is not None and self._failures > self.max_retries:
            self._closed = True
            raise error
        first, cap = self.backoff
        delay = min(cap, first * (2 ** min(self._failures - 1, 30)))
        delay *= 0.5 + random.random() / 2
        if self.on_reconnect is not None:
            self.on_reconnect(error, self._failures, delay, self.cursor)
        self._stop.wait(delay)

    def close(self) -> None:
        """Cancels the subscription; iteration ends."""
        self._closed = True
        self._stop.set()
        call, self._call = self._call, None
        if call is not None:
            call.cancel()

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __del__(self) -> None:
        call = getattr(self, "_call", None)
        if call is not None:
            call.abandon()
