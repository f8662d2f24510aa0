"""One connection to a Vigil server: the handshake, a reader thread, and calls.

A `Connection` owns a TCP socket. After the preface and HELLO/Welcome exchange
a daemon thread reads every frame and routes it: MESSAGE and TRAILERS to their
call's queue, PING answered with PONG, PONG to `ping()`, GOAWAY ends the
connection for new calls (calls the server did not accept fail with the GOAWAY's
code, UNAVAILABLE at a shutdown; the others finish, or fail with ConnectionError
whatever that code if the server closes first: they may have run).
Calls may be opened from any thread; each gets a new odd stream id, larger than
every id before it, and HEADERS + the request MESSAGE are written together (so
unary calls pipeline). Sends are bounded by `send_timeout`: a server that stops
reading fails the connection instead of hanging every writer.

This is the low-level layer; `vigil_client.Client` is the API.
"""

from __future__ import annotations

import collections
import os
import queue
import socket
import struct
import sys
import threading
import time
from typing import Deque, Dict, List, Optional, Tuple, Type, TypeVar, Union

from google.protobuf.message import DecodeError, Message

from . import pb
from .errors import (
    DeadlineExceeded,
    EventError,
    FailedPrecondition,
    ProtocolError,
    ResourceExhausted,
    StatusCode,
    Unavailable,
    VigilConnectionError,
    VigilError,
)
from .wire import (
    COMPRESSED,
    CONNECTION_FRAME_TYPES,
    END_STREAM,
    HEADER,
    HEADER_SIZE,
    MAJOR_VERSION,
    MAX_STREAM_ID,
    MINOR_VERSION,
    PREFACE,
    FrameType,
    deflate,
    encode_header,
    inflate,
)

__all__ = ["Connection", "Call", "TIMEOUT", "DEFAULT_MAX_FRAME_SIZE", "DEFAULT_SEND_TIMEOUT", "parse_address"]

#: The largest frame this client accepts from the server (announced in HELLO).
DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024
#: The largest message a COMPRESSED frame from the server may inflate to.
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024
#: How long past a call's deadline the client waits for the server's
#: DEADLINE_EXCEEDED before it gives up on its own.
DEADLINE_GRACE = 2.0
#: The server refuses a Hello.max_frame_size below this.
MIN_CLIENT_FRAME_SIZE = 131_072
#: How long a send may make no progress (the server not reading) before the
#: connection is failed; sends hold the write lock, so an unbounded one would
#: hang every call on the connection.
DEFAULT_SEND_TIMEOUT = 30.0

M = TypeVar("M", bound=Message)


def _decode(message_type: Type[M], payload: bytes, what: str) -> M:
    """Decodes a server message; a malformed one is a `ProtocolError` (protobuf's
    `DecodeError` is not a `VigilError`, nor even a `ValueError`)."""
    try:
        return message_type.FromString(payload)
    except DecodeError as error:
        raise ProtocolError(message=f"the server's {what} could not be decoded: {error}") from None


def _send_timeout_option(seconds: float) -> bytes:
    """The SO_SNDTIMEO value for `seconds` (a timeval; a DWORD of milliseconds on Windows)."""
    seconds = min(seconds, 2**31 - 1)
    if sys.platform == "win32":
        return struct.pack("=I", max(1, int(seconds * 1000)))
    whole, micros = divmod(max(1, int(seconds * 1_000_000)), 1_000_000)  # 0 would mean "no timeout"
    return struct.pack("ll", whole, micros)


class _Timeout:
    """Returned by `Call.receive` when its poll timeout passed first."""

    def __repr__(self) -> str:
        return "TIMEOUT"


TIMEOUT = _Timeout()

# What the reader thread hands to a call: a response payload, the trailers, or an error.
_Item = Tuple[str, Union[bytes, pb.Status, VigilError]]


def parse_address(address: Union[str, Tuple[str, int]], default_port: int = 7700) -> Tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT``, a bare host (port 7700), or a ``(host, port)`` tuple."""
    if isinstance(address, tuple):
        host, port = address
        return str(host), int(port)
    text = address.strip()
    host, port_text = text, ""
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise ValueError(f"{address!r} is not HOST:PORT (for example 127.0.0.1:7700 or [::1]:7700)")
        host, rest = text[1:close], text[close + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{address!r} is not HOST:PORT (for example 127.0.0.1:7700 or [::1]:7700)")
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    try:
        port = int(port_text) if port_text else default_port
    except ValueError:
        raise ValueError(f"{address!r} is not HOST:PORT (for example 127.0.0.1:7700 or [::1]:7700)") from None
    if not host or not 1 <= port <= 65535:
        raise ValueError(f"{address!r} is not HOST:PORT (for example 127.0.0.1:7700 or [::1]:7700)")
    return host, port


def _status_error(status: pb.Status) -> VigilError:
    return VigilError.from_status(
        status.code,
        status.message,
        [EventError(e.index, e.field, e.reason) for e in status.event_errors],
        dict(status.metadata),
    )


class Call:
    """One call on a connection: its stream id and the frames that arrive for it.

    `receive()` returns each response message's bytes in order, then None once
    the call ended OK (`metadata` then holds the trailers' metadata); a failed
    call raises its `VigilError`. For streaming calls, `grant()` sends WINDOW
    credit; `cancel()` abandons the call.
    """

    def __init__(
        self,
        connection: "Connection",
        stream_id: int,
        method: str,
        streaming: bool,
        timeout: Optional[float],
    ) -> None:
        self.connection = connection
        self.stream_id = stream_id
        self.method = method
        self.streaming = streaming
        self.timeout = timeout
        self._local_deadline = None if timeout is None else time.monotonic() + timeout + DEADLINE_GRACE
        self._queue: "queue.SimpleQueue[_Item]" = queue.SimpleQueue()
        self._slot_held = True
        self._lock = threading.Lock()
        #: True once the call ended (trailers, error or cancel).
        self.done = False
        self._finished = False
        self._final_error: Optional[VigilError] = None
        #: The trailers' status code and metadata once the call ended with TRAILERS.
        self.status: Optional[pb.Status] = None
        self.metadata: Dict[str, str] = {}

    # Called by the connection (reader thread or a failing writer).
    def _deliver(self, item: _Item) -> None:
        self._queue.put(item)

    def _release_slot(self) -> None:
        with self._lock:
            held, self._slot_held = self._slot_held, False
        if held:
            self.connection._slots.release()

    def receive(self, timeout: Optional[float] = None) -> Union[bytes, None, _Timeout]:
        """The next response message (bytes), None at the OK end, or TIMEOUT when
        `timeout` seconds passed without anything (the call goes on).

        Raises the call's `VigilError`; a `DeadlineExceeded` of its own when the
        server stays silent well past the call's deadline (the call is cancelled).
        """
        if self._finished:
            if self._final_error is not None:
                raise self._final_error
            return None
        while True:
            wait = timeout
            if self._local_deadline is not None:
                left = max(0.0, self._local_deadline - time.monotonic())
                wait = left if wait is None else min(wait, left)
            try:
                kind, value = self._queue.get(timeout=wait)
            except queue.Empty:
                if self._local_deadline is not None and time.monotonic() >= self._local_deadline:
                    self.cancel("the client's deadline passed")
                    raise DeadlineExceeded(
                        message=f"no answer to {self.method} within its deadline of {self.timeout:g} s "
                        f"(and {DEADLINE_GRACE:g} s of grace)"
                    ) from None
                return TIMEOUT
            if kind == "m":
                assert isinstance(value, bytes)
                return value
            self.done = True
            self._finished = True
            if kind == "t":
                assert isinstance(value, pb.Status)
                self.status = value
                self.metadata = dict(value.metadata)
                if value.code != StatusCode.OK:
                    self._final_error = _status_error(value)
                    raise self._final_error
                return None
            assert isinstance(value, VigilError)
            self._final_error = value
            raise value

    def grant(self, messages: int) -> None:
        """WINDOW: lets the server send `messages` more response messages."""
        if messages <= 0 or self.done:
            return
        try:
            self.connection._send_call_frame(FrameType.WINDOW, self.stream_id, pb.Window(messages=messages))
        except VigilError:
            pass  # the connection failed: the next receive() raises why

    def cancel(self, reason: str = "") -> None:
        """CANCEL: the server stops the call and sends nothing more on it. Idempotent."""
        if self.done:
            return
        self.done = True
        if self.connection._forget(self.stream_id):
            self._deliver(("e", VigilError.from_status(StatusCode.CANCELLED, "the client cancelled the call", from_server=False)))
            try:
                self.connection._send_call_frame(FrameType.CANCEL, self.stream_id, pb.Cancel(reason=reason))
            except VigilError:
                pass  # the connection is gone: so is the call

    close = cancel

    def abandon(self) -> None:
        """Like `cancel`, but safe from a finalizer (``__del__``): takes no lock and
        writes nothing now; the connection cancels the call before its next call opens."""
        if not self.done:
            self.connection._abandoned.append(self)


class Connection:
    """A connected, handshaken connection. Use `Connection.open(...)`."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        token: str = "",
        client_name: str = "vigil-python",
        connect_timeout: float = 10.0,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        compress_min_bytes: Optional[int] = None,
        send_timeout: Optional[float] = DEFAULT_SEND_TIMEOUT,
    ) -> None:
        if max_frame_size < MIN_CLIENT_FRAME_SIZE:
            raise ValueError(f"max_frame_size must be at least {MIN_CLIENT_FRAME_SIZE}")
        if send_timeout is not None and not send_timeout > 0:
            raise ValueError("send_timeout must be positive (or None: no bound)")
        self.host = host
        self.port = port
        self.max_frame_size = max_frame_size
        self.max_message_size = max_message_size
        self.compress_min_bytes = compress_min_bytes
        self.send_timeout = send_timeout
        self.welcome = pb.Welcome()
        self._state_lock = threading.Lock()
        self._write_lock = threading.Lock()
        # At most one PONG waits unsent (a newer PING's replaces it), so a server
        # that PINGs while not reading cannot grow this without bound.
        self._pending_pong: Optional[bytes] = None
        self._abandoned: Deque[Call] = collections.deque()
        self._calls: Dict[int, Call] = {}
        self._next_stream_id = 1
        self._highest_stream_id = 0
        self._error: Optional[VigilError] = None
        self._goaway: Optional[Tuple[int, VigilError]] = None
        self._pings: Dict[bytes, Tuple[threading.Event, List[float]]] = {}
        self._slots = threading.BoundedSemaphore(1)
        self._sock = self._connect(connect_timeout)
        try:
            self._handshake(token, client_name, connect_timeout)
        except BaseException:
            self._sock.close()
            raise
        self._slots = threading.BoundedSemaphore(max(1, self.welcome.max_concurrent_calls or 128))
        self._reader = threading.Thread(
            target=self._read_loop, name=f"vigil-reader-{host}:{port}", daemon=True
        )
        self._reader.start()

    # MARK: Setup

    def _connect(self, timeout: float) -> socket.socket:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=timeout)
        except OSError as error:
            raise VigilConnectionError(
                message=f"cannot connect to {self.host}:{self.port}: {error}; is `vigil serve` running there?"
            ) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _handshake(self, token: str, client_name: str, timeout: float) -> None:
        self._sock.settimeout(timeout)
        hello = pb.Hello(
            major_version=MAJOR_VERSION,
            minor_version=MINOR_VERSION,
            client_name=client_name,
            auth_token=token,
            max_frame_size=self.max_frame_size,
        ).SerializeToString()
        try:
            self._sock.sendall(PREFACE + encode_header(len(hello), FrameType.HELLO, 0, 0) + hello)
            preface = self._recv_exact(len(PREFACE), during="the handshake")
            if preface[:4] != PREFACE[:4]:
                if preface.startswith(b"HTTP/"):
                    raise ProtocolError(message=f"{self.host}:{self.port} answered with HTTP: it is not a Vigil port")
                raise ProtocolError(message=f"{self.host}:{self.port} did not answer with the Vigil preface: is this a Vigil port?")
            major = preface[4]
            while True:
                frame_type, flags, stream_id, payload = self._read_frame(during="the handshake")
                if frame_type == FrameType.GOAWAY:
                    raise self._goaway_error(_decode(pb.GoAway, payload, "GOAWAY"))
                if frame_type == FrameType.PING:
                    self._sock.sendall(encode_header(len(payload), FrameType.PONG, 0, 0) + payload)
                    continue
                if frame_type != FrameType.HELLO:
                    raise ProtocolError(message=f"the server sent {FrameType(frame_type).name} before its HELLO")
                break
            if major != MAJOR_VERSION:
                raise FailedPrecondition(message=f"the server speaks protocol version {major}.{preface[5]}, this client {MAJOR_VERSION}.x")
            self.welcome = _decode(pb.Welcome, payload, "HELLO (Welcome)")
            # From now on the reader blocks in recv for as long as it takes; sends
            # (see DEFAULT_SEND_TIMEOUT) are bounded by SO_SNDTIMEO, which leaves recv alone.
            self._sock.settimeout(None)
            if self.send_timeout is not None:
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _send_timeout_option(self.send_timeout))
        except socket.timeout:
            raise VigilConnectionError(
                message=f"{self.host}:{self.port} did not complete the handshake within {timeout:g} s"
            ) from None
        except OSError as error:
            raise VigilConnectionError(message=f"handshake with {self.host}:{self.port} failed: {error}") from None

    def _goaway_error(self, goaway: pb.GoAway) -> VigilError:
        code = goaway.code if goaway.code != StatusCode.OK else StatusCode.UNAVAILABLE
        message = goaway.message or "the server closed the connection"
        return VigilError.from_status(code, message)

    # MARK: Reading

    def _recv_exact(self, count: int, during: str = "") -> bytes:
        buffer = bytearray(count)
        view = memoryview(buffer)
        got = 0
        while got < count:
            received = self._sock.recv_into(view[got:], count - got)
            if received == 0:
                where = f" during {during}" if during else ""
                raise VigilConnectionError(message=f"the server closed the connection{where}")
            got += received
        return bytes(buffer)

    def _read_frame(self, during: str = "") -> Tuple[int, int, int, bytes]:
        length, frame_type, flags, stream_id = HEADER.unpack(self._recv_exact(HEADER_SIZE, during))
        try:
            kind = FrameType(frame_type)
        except ValueError:
            raise ProtocolError(message=f"the server sent an unknown frame type 0x{frame_type:02x}") from None
        allowed = (END_STREAM | COMPRESSED) if kind == FrameType.MESSAGE else 0
        if flags & ~allowed:
            raise ProtocolError(message=f"the server sent a {kind.name} frame with flags 0x{flags:02x} it does not allow")
        if (kind in CONNECTION_FRAME_TYPES) != (stream_id == 0):
            raise ProtocolError(message=f"the server sent a {kind.name} frame on stream {stream_id}")
        if length > self.max_frame_size:
            raise ProtocolError(
                message=f"the server sent a {kind.name} frame of {length} bytes, over this client's limit of {self.max_frame_size}"
            )
        payload = self._recv_exact(length, during) if length else b""
        return frame_type, flags, stream_id, payload

    def _read_loop(self) -> None:
        try:
            while True:
                frame_type, flags, stream_id, payload = self._read_frame()
                self._dispatch(frame_type, flags, stream_id, payload)
        except ProtocolError as error:
            # Tell the server why, as it would tell us (best effort), then close.
            goaway = pb.GoAway(
                last_stream_id=0, code=StatusCode.INVALID_ARGUMENT, message=error.message[:1024]
            ).SerializeToString()
            if self._write_lock.acquire(timeout=1.0):
                try:
                    self._sock.sendall(encode_header(len(goaway), FrameType.GOAWAY, 0, 0) + goaway)
                except OSError:
                    pass
                finally:
                    self._write_lock.release()
            self._fail(error)
        except VigilError as error:
            if isinstance(error, VigilConnectionError):
                with self._state_lock:
                    goaway_seen = self._goaway
                if goaway_seen is not None:
                    # The calls still open are those at or below GOAWAY.last_stream_id (the
                    # others failed at the GOAWAY): accepted, so they may have run, whatever
                    # the GOAWAY's code (UNAUTHENTICATED at a token's revocation, INTERNAL...).
                    # Hence a connection error ("may have been stored"), not the GOAWAY's
                    # status, which says the call was refused.
                    reason = goaway_seen[1]
                    error = VigilConnectionError(
                        message=f"the server closed the connection after GOAWAY ({reason.code.name}: {reason.message}) "
                        "before answering; the call may have run"
                    )
            self._fail(error)
        except OSError as error:
            self._fail(VigilConnectionError(message=f"the connection to {self.host}:{self.port} failed: {error}"))
        except Exception as error:  # a payload that does not decode: the stream cannot be trusted
            self._fail(ProtocolError(message=f"could not decode a frame from the server: {error}"))

    def _dispatch(self, frame_type: int, flags: int, stream_id: int, payload: bytes) -> None:
        if frame_type == FrameType.MESSAGE:
            call = self._call_for(stream_id)
            if call is None:
                return
            if flags & COMPRESSED:
                try:
                    payload = inflate(payload, self.max_message_size)
                except VigilError as error:
                    call._deliver(("e", error))
                    call.cancel("bad compressed message")
                    return
            call._deliver(("m", payload))
        elif frame_type == FrameType.TRAILERS:
            call = self._call_for(stream_id)
            status = _decode(pb.Status, payload, "TRAILERS")
            if call is not None and self._forget(stream_id):
                call._deliver(("t", status))
        elif frame_type == FrameType.CANCEL:
            call = self._call_for(stream_id)
            if call is not None and self._forget(stream_id):
                reason = _decode(pb.Cancel, payload, "CANCEL").reason
                call._deliver(("e", VigilError.from_status(StatusCode.CANCELLED, reason or "the server cancelled the call")))
        elif frame_type == FrameType.PING:
            self._queue_pong(encode_header(len(payload), FrameType.PONG, 0, 0) + payload)
        elif frame_type == FrameType.PONG:
            with self._state_lock:
                waiter = self._pings.pop(payload, None)
            if waiter is not None:
                waiter[1].append(time.monotonic())
                waiter[0].set()
        elif frame_type == FrameType.GOAWAY:
            goaway = _decode(pb.GoAway, payload, "GOAWAY")
            error = self._goaway_error(goaway)
            with self._state_lock:
                self._goaway = (goaway.last_stream_id, error)
                refused = [call for sid, call in self._calls.items() if sid > goaway.last_stream_id]
            for call in refused:
                if self._forget(call.stream_id):
                    call._deliver(("e", error))
        else:  # HELLO, HEADERS, WINDOW: the server never sends these after the handshake
            raise ProtocolError(message=f"the server sent a {FrameType(frame_type).name} frame, which only clients send")

    def _call_for(self, stream_id: int) -> Optional[Call]:
        with self._state_lock:
            call = self._calls.get(stream_id)
            if call is None and (stream_id % 2 == 0 or stream_id > self._highest_stream_id):
                raise ProtocolError(message=f"the server sent a frame for stream {stream_id}, which no call opened")
        return call

    def _forget(self, stream_id: int) -> bool:
        """Removes a call; True if it was still open (so exactly one party ends it)."""
        with self._state_lock:
            call = self._calls.pop(stream_id, None)
        if call is None:
            return False
        call._release_slot()
        return True

    def _fail(self, error: VigilError) -> None:
        with self._state_lock:
            if self._error is None:
                self._error = error
            calls = list(self._calls.values())
            self._calls.clear()
            pings = list(self._pings.values())
            self._pings.clear()
        for call in calls:
            call._release_slot()
            call._deliver(("e", error))
        for event, _ in pings:
            event.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()

    # MARK: Writing

    def _write(self, *parts: bytes) -> None:
        """Writes frames in order, then any PONG the reader queued meanwhile."""
        with self._write_lock:
            if self._error is not None:
                raise self._error_for_new_work()
            try:
                for part in parts:
                    self._sock.sendall(part)
                self._send_pending_pong()
            except OSError as error:
                failure = self._write_failure(error)
                self._fail(failure)
                raise failure from None
        self._flush_control()

    def _write_failure(self, error: OSError) -> VigilConnectionError:
        if isinstance(error, (BlockingIOError, socket.timeout)) and self.send_timeout is not None:
            # SO_SNDTIMEO expired; part of a frame may be out, so the connection is done.
            return VigilConnectionError(
                message=f"writing to {self.host}:{self.port} made no progress for {self.send_timeout:g} s "
                "(send_timeout): the server is not reading"
            )
        return VigilConnectionError(message=f"writing to {self.host}:{self.port} failed: {error}")

    def _queue_pong(self, frame: bytes) -> None:
        """Sends a PONG now if no other thread is writing, else leaves it for that thread.

        The reader thread never waits for the write lock; a send it makes itself is
        bounded by `send_timeout`.
        """
        with self._state_lock:
            self._pending_pong = frame  # replaces an older PONG not sent yet
        self._flush_control()

    def _send_pending_pong(self) -> None:
        """Writes the pending PONG, if any; the caller holds the write lock."""
        with self._state_lock:
            frame, self._pending_pong = self._pending_pong, None
        if frame is not None and self._error is None:
            self._sock.sendall(frame)

    def _flush_control(self) -> None:
        # Whoever holds the write lock writes the pending PONG; if another thread
        # holds it, that thread looks again after releasing it.
        while self._pending_pong is not None and self._write_lock.acquire(blocking=False):
            try:
                self._send_pending_pong()
            except OSError as error:
                # A PONG may be half written: nothing else can follow it on this socket.
                self._fail(self._write_failure(error))
            finally:
                self._write_lock.release()

    def _send_call_frame(self, frame_type: FrameType, stream_id: int, message: "pb.Window | pb.Cancel") -> None:
        payload = message.SerializeToString()
        self._write(encode_header(len(payload), frame_type, 0, stream_id) + payload)

    def _error_for_new_work(self) -> VigilError:
        if self._error is not None:
            error = self._error
            return type(error)(int(error.code), error.message, metadata=error.metadata, from_server=error.from_server)
        if self._goaway is not None:
            return Unavailable(message=f"the server sent GOAWAY: {self._goaway[1].message}", from_server=True)
        return Unavailable(message="the connection has no stream ids left; open a new one")

    # MARK: Calls

    @property
    def usable(self) -> bool:
        """Whether new calls may be opened (no GOAWAY, not failed, ids left)."""
        return self._error is None and self._goaway is None and self._next_stream_id <= MAX_STREAM_ID

    @property
    def open_calls(self) -> int:
        with self._state_lock:
            return len(self._calls)

    def open_call(
        self,
        method: str,
        request: bytes,
        *,
        streaming: bool = False,
        timeout: Optional[float] = None,
        initial_window: Optional[int] = None,
        metadata: Optional[Dict[str, str]] = None,
        enforce_frame_limit: bool = True,
        send_request: bool = True,
    ) -> Call:
        """Opens a call: HEADERS (method, deadline, window) and the request MESSAGE with END_STREAM.

        A request over the server's `max_frame_size` is compressed if that makes it
        fit, else refused here with `ResourceExhausted` (nothing is sent) unless
        `enforce_frame_limit` is False (then the server refuses it).
        `send_request=False` sends HEADERS alone (for tests of the protocol).
        """
        self._reap()
        flags = END_STREAM
        payload = request
        limit = self.welcome.max_frame_size or (4 * 1024 * 1024)
        compress_at = self.compress_min_bytes
        if (compress_at is not None and len(payload) >= compress_at) or (enforce_frame_limit and len(payload) > limit):
            compressed = deflate(payload)
            if len(compressed) < len(payload):
                payload, flags = compressed, flags | COMPRESSED
        if enforce_frame_limit and len(payload) > limit:
            raise ResourceExhausted(
                message=f"the {method} request is {len(request)} bytes ({len(payload)} compressed), over the server's "
                f"frame limit of {limit} bytes; send smaller batches"
            )
        headers = pb.CallHeaders(method=method)
        if timeout is not None:
            headers.timeout_ms = max(1, int(timeout * 1000))
        if initial_window is not None:
            headers.initial_window = initial_window
        if metadata:
            headers.metadata.update(metadata)
        header_bytes = headers.SerializeToString()

        wait = None if timeout is None else timeout
        if not self._slots.acquire(timeout=wait):
            raise DeadlineExceeded(message=f"no call slot on the connection freed up within {timeout:g} s")
        slot_owned = True
        try:
            with self._write_lock:
                with self._state_lock:
                    if not self.usable:
                        raise self._error_for_new_work()
                    stream_id = self._next_stream_id
                    self._next_stream_id += 2
                    self._highest_stream_id = stream_id
                    call = Call(self, stream_id, method, streaming, timeout)
                    self._calls[stream_id] = call
                    slot_owned = False  # the call releases it now
                parts = [encode_header(len(header_bytes), FrameType.HEADERS, 0, stream_id) + header_bytes]
                if send_request:
                    head = encode_header(len(payload), FrameType.MESSAGE, flags, stream_id)
                    if len(payload) < 65536:
                        parts[0] += head + payload
                    else:
                        parts += [head, payload]
                try:
                    for part in parts:
                        self._sock.sendall(part)
                    self._send_pending_pong()
                except OSError as error:
                    # The call is registered: it fails with the connection's error
                    # (this one, or the reader's if it saw the reason first).
                    self._fail(self._write_failure(error))
        finally:
            if slot_owned:
                self._slots.release()
        self._flush_control()
        return call

    def _reap(self) -> None:
        """Cancels the calls abandoned by finalizers (they hold call slots)."""
        while self._abandoned:
            try:
                call = self._abandoned.popleft()
            except IndexError:
                break
            call.cancel("abandoned by the client")

    def send_raw_frame(self, frame_type: int, flags: int, stream_id: int, payload: bytes) -> None:
        """Writes any frame as is (for protocol tests)."""
        self._write(encode_header(len(payload), frame_type, flags, stream_id) + payload)

    def ping(self, timeout: float = 10.0) -> float:
        """Sends PING and waits for its PONG; returns the round trip in seconds."""
        opaque = int.from_bytes(os.urandom(8), "big")
        payload = pb.Ping(opaque=opaque).SerializeToString()
        event = threading.Event()
        times: List[float] = []
        with self._state_lock:
            if self._error is not None:
                raise self._error_for_new_work()
            self._pings[payload] = (event, times)
        start = time.monotonic()
        self._write(encode_header(len(payload), FrameType.PING, 0, 0) + payload)
        if not event.wait(timeout) or not times:
            with self._state_lock:
                self._pings.pop(payload, None)
            if self._error is not None:
                raise self._error_for_new_work()
            raise DeadlineExceeded(message=f"no PONG within {timeout:g} s")
        return times[0] - start

    def close(self) -> None:
        """Closes the socket; open calls fail with `ConnectionError`."""
        self._fail(VigilConnectionError(message="the connection was closed by the client"))

    @property
    def closed(self) -> bool:
        return self._error is not None

    def __repr__(self) -> str:
        state = "closed" if self._error else ("draining" if self._goaway else "open")
        return f"<vigil_client.Connection {self.host}:{self.port} {state}>"
