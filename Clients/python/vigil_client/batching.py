"""`BatchingIngester`: buffers events and sends them in batches, safely retried.

    with BatchingIngester(client, max_events=1000, max_delay=1.0) as ingester:
        for event in source:
            ingester.add(event)          # sends a batch every 1,000 events or 1 s
    # leaving the block flushes what is left and raises the first failure, if any

Every batch carries its own idempotency key (``<key_prefix>-<n>``), so a batch
whose answer was lost (dropped connection, server restart, UNAVAILABLE,
RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED) is sent again with the same key on a
new connection and is stored exactly once. Batches go out one at a time, in
order.

An exception raised by an ``on_result`` or ``on_error`` callback is logged to the
``vigil_client.batching`` logger (with its traceback) and otherwise ignored, so
that a faulty callback cannot lose batches or stop the timer. ``close()`` cuts a
retry pause that would outlast its timeout: that batch fails with `Cancelled` (see
`BatchingIngester`).
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from typing import Any, Callable, Iterable, List, Optional

from . import pb
from .client import Client, IngestResult
from .convert import EventLike, to_event
from .errors import (
    Aborted,
    Cancelled,
    DeadlineExceeded,
    ResourceExhausted,
    Unavailable,
    VigilError,
)

__all__ = ["BatchingIngester", "RETRYABLE"]

#: Errors after which a batch is sent again with the same idempotency key.
RETRYABLE = (Unavailable, ResourceExhausted, DeadlineExceeded, Aborted)

#: Room left in a frame for the request's own fields.
_FRAME_MARGIN = 4096

#: The longest ``vigil.retry-after-ms`` honoured (as the C client): the ingester
#: holds its flush lock while it waits, and a wait overflows past ~9.2e9 s.
RETRY_AFTER_MAX_MS = 3_600_000

_logger = logging.getLogger(__name__)


class BatchingIngester:
    """Buffers events; sends a batch when `max_events` are buffered, when the
    buffer would exceed the server's frame size, or `max_delay` seconds after
    the oldest buffered event arrived (a background thread), and on `flush()` /
    `close()`.

    Args:
        client: the `Client` to send with (its connection is re-opened as needed).
        max_events: events per batch (capped by the server's ``max_batch_events``).
        max_delay: seconds an event may wait in the buffer (None: only size and flush).
        key_prefix: idempotency keys are ``f"{key_prefix}-{n}"``; default a random id.
        max_retries: attempts after the first for a batch hitting a retryable error.
        backoff: (first, largest) delay between attempts, in seconds; the
            server's ``vigil.retry-after-ms`` wins when it is larger (capped at an hour).
        on_result: called with each batch's `IngestResult` (from the sending thread).
        on_error: called with the exception of a batch that could not be stored
            (from the sending thread). The first such error is also raised by the
            next `add`, `flush` or `close`; the batch is in ``error.batch``, its
            key in ``error.idempotency_key``.

    An exception (any `Exception`) raised by `on_result` or `on_error` does not
    propagate: it is logged with its traceback to the ``vigil_client.batching``
    logger, the batch's outcome stands (its result is recorded, or its error is
    raised as above), the remaining batches are still sent and the timer keeps
    running.

    `close(timeout)` retries for at most `timeout` seconds (30 by default): a
    retry pause under way (on the timer thread, or in another thread's `add` or
    `flush`), or one the final flush needs, that would end later is cut short
    (a server's retry-after can ask for up to an hour). Its batch then fails with `Cancelled`
    (``from_server`` False; ``__cause__`` is its last attempt's error), which goes
    to `on_error` and is raised by `close` like any other failure. An earlier
    attempt may have been stored: send ``error.batch`` again with
    ``error.idempotency_key`` to store it exactly once.
    """

    def __init__(
        self,
        client: Client,
        *,
        max_events: int = 1000,
        max_delay: Optional[float] = 1.0,
        key_prefix: Optional[str] = None,
        max_retries: int = 10,
        backoff: tuple = (0.1, 5.0),
        on_result: Optional[Callable[[IngestResult], None]] = None,
        on_error: Optional[Callable[[VigilError], None]] = None,
    ) -> None:
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        self.client = client
        self.max_events = max_events
        self.max_delay = max_delay
        self.key_prefix = key_prefix or uuid.uuid4().hex
        self.max_retries = max_retries
        self.backoff = backoff
        self.on_result = on_result
        self.on_error = on_error
        #: Answers of the batches sent, in order.
        self.results: List[IngestResult] = []
        self.batches_sent = 0
        self.events_sent = 0
        #: Attempts that were retries (after a retryable error).
        self.retries = 0
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._buffer: List[pb.AuditEvent] = []
        self._buffer_bytes = 0
        self._oldest: Optional[float] = None
        self._next_key = 0
        self._error: Optional[VigilError] = None
        self._closed = False
        self._stop = threading.Event()
        #: Set by close(): retry pauses that would end later are cut short.
        self._close_deadline: Optional[float] = None
        self._timer: Optional[threading.Thread] = None
        if max_delay is not None:
            self._timer = threading.Thread(target=self._timer_loop, name="vigil-batching-ingester", daemon=True)
            self._timer.start()

    # MARK: Adding

    def add(self, event: EventLike) -> None:
        """Buffers one event (a message or a dict in the JSON form); may send a batch.

        Raises the failure of an earlier batch first, if any (the event is then not buffered).
        """
        self._raise_pending()
        message = to_event(event)
        size = message.ByteSize() + 8
        while True:
            with self._lock:
                if self._closed:
                    raise ValueError("the ingester is closed")
                if not self._buffer or self._buffer_bytes + size <= self._max_bytes():
                    self._append(message, size)
                    full = len(self._buffer) >= self._batch_limit()
                    break
            self._flush_once()  # the event would make the batch too large for a frame
        if full:
            self._flush_once()  # a failure is raised by the next add, flush or close

    def add_many(self, events: Iterable[EventLike]) -> None:
        for event in events:
            self.add(event)

    def _append(self, message: pb.AuditEvent, size: int) -> None:
        if not self._buffer:
            self._oldest = time.monotonic()
            self._changed.notify_all()
        self._buffer.append(message)
        self._buffer_bytes += size

    def _batch_limit(self) -> int:
        limit = self.max_events
        connection = self.client._connection_
        if connection is not None and connection.welcome.max_batch_events:
            limit = min(limit, connection.welcome.max_batch_events)
        return limit

    def _max_bytes(self) -> int:
        connection = self.client._connection_
        frame = connection.welcome.max_frame_size if connection is not None and connection.welcome.max_frame_size else 4 * 1024 * 1024
        return max(1, frame - _FRAME_MARGIN)

    # MARK: Sending

    def flush(self) -> List[IngestResult]:
        """Sends everything buffered now; returns the answers of the batches it sent."""
        sent: List[IngestResult] = []
        while True:
            with self._lock:
                if not self._buffer:
                    break
            sent += self._flush_once()
        self._raise_pending()
        return sent

    def _flush_once(self) -> List[IngestResult]:
        """Takes one batch from the buffer and sends it (batches go out in order)."""
        with self._flush_lock:
            if self.client._connection_ is None:
                # The server's max_batch_events comes with its Welcome: connect
                # before the first batch is cut, or a server that takes fewer
                # than max_events refuses it. A failure here is the send's to retry.
                try:
                    self.client.connection()
                except VigilError:
                    pass
            with self._lock:
                if not self._buffer:
                    return []
                limit = self._batch_limit()
                batch, self._buffer = self._buffer[:limit], self._buffer[limit:]
                self._buffer_bytes = sum(e.ByteSize() + 8 for e in self._buffer) if self._buffer else 0
                self._oldest = time.monotonic() if self._buffer else None
                key = f"{self.key_prefix}-{self._next_key}"
                self._next_key += 1
            try:
                result = self._send(batch, key)
            except VigilError as error:
                error.batch = batch  # type: ignore[attr-defined]
                error.idempotency_key = key  # type: ignore[attr-defined]
                with self._lock:
                    if self._error is None:
                        self._error = error
                if self.on_error is not None:
                    self._call_back("on_error", self.on_error, error)
                return []
            self.results.append(result)
            self.batches_sent += 1
            self.events_sent += result.count
            if self.on_result is not None:
                self._call_back("on_result", self.on_result, result)
            return [result]

    @staticmethod
    def _call_back(name: str, callback: Callable[[Any], None], argument: Any) -> None:
        """Runs a user callback. What it raises is logged, not propagated: raised here it
        would skip the batches still buffered, or end the timer thread, losing events."""
        try:
            callback(argument)
        except Exception:
            _logger.exception("BatchingIngester: the %s callback raised; ignored (the batch's outcome stands)", name)

    def _send(self, batch: List[pb.AuditEvent], key: str) -> IngestResult:
        attempt = 0
        while True:
            try:
                return self.client.ingest(batch, idempotency_key=key)
            except RETRYABLE as error:
                if isinstance(error, ResourceExhausted) and not error.from_server:
                    raise  # too large to send at all: retrying cannot help
                if attempt >= self.max_retries:
                    raise
                attempt += 1
                self.retries += 1
                first, cap = self.backoff
                delay = min(cap, first * (2 ** min(attempt - 1, 30))) * (0.5 + random.random() / 2)
                hint = getattr(error, "retry_after_ms", None)
                if hint is not None and hint > 0:
                    delay = max(delay, min(hint, RETRY_AFTER_MAX_MS) / 1000)  # cap before dividing: the int may be huge
                if self._pause(delay):
                    raise Cancelled(
                        message=f"the ingester was closed while batch {key} waited {delay:g} s to be sent again "
                        f"(after {error}); an earlier attempt may have been stored: send error.batch again with "
                        "error.idempotency_key to store it exactly once",
                        from_server=False,
                    ) from error

    def _pause(self, delay: float) -> bool:
        """Backoff before the next attempt; True when it would end past `close()`'s
        deadline (then there is no pause: the batch fails at once).

        We hold the flush lock meanwhile: a plain sleep would keep `close()` waiting
        for up to an hour (the server's retry-after). Pauses that end within the
        deadline still run, so that a batch caught by a restart at close is stored."""
        end = time.monotonic() + delay
        with self._lock:
            while True:
                if self._close_deadline is not None and end > self._close_deadline:
                    return True
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)  # close() notifies

    def _timer_loop(self) -> None:
        assert self.max_delay is not None
        while not self._stop.is_set():
            with self._lock:
                if self._oldest is None:
                    self._changed.wait(timeout=self.max_delay)
                    continue
                due = self._oldest + self.max_delay - time.monotonic()
                if due > 0:
                    self._changed.wait(timeout=due)
                    continue
            self._flush_once()

    def _raise_pending(self) -> None:
        with self._lock:
            error, self._error = self._error, None
        if error is not None:
            raise error

    # MARK: Closing

    @property
    def buffered(self) -> int:
        """Events waiting in the buffer."""
        with self._lock:
            return len(self._buffer)

    def close(self, timeout: float = 30.0) -> None:
        """Flushes what is buffered, stops the timer, and raises the first failure, if any.

        Retries go on for at most `timeout` seconds: a retry pause (under way, or
        one the final flush needs) that would end later is cut short, and its batch
        fails with `Cancelled` (see the class docstring).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._close_deadline = time.monotonic() + max(0.0, timeout)
            self._stop.set()  # ends the timer
            self._changed.notify_all()  # and wakes retry pauses to check the deadline
        try:
            self.flush()
        finally:
            if self._timer is not None:
                self._timer.join()
        self._raise_pending()  # the failure of a batch the timer thread was still sending

    def __enter__(self) -> "BatchingIngester":
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        if exc_type is None:
            self.close()
            return
        try:  # an exception is on its way out: flush what we can, but do not mask it
            self.close()
        except VigilError:
            pass
