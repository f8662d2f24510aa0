"""What the real server never does, played by a scripted fake: server PINGs, COMPRESSED
responses, GOAWAY with calls in flight, protocol violations, refusals at the handshake."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import zlib
from typing import Any, Callable, List, Optional, Tuple

import pytest
from conftest import wait_for

from vigil_client import (
    BatchingIngester,
    Cancelled,
    Client,
    IngestResult,
    Internal,
    InvalidArgument,
    Method,
    ProtocolError,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    VigilConnectionError,
    VigilError,
    pb,
)
from vigil_client.wire import COMPRESSED, END_STREAM, HEADER, PREFACE, FrameType


class Peer:
    """The fake server's end of one connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def recv_exact(self, count: int) -> bytes:
        data = bytearray()
        while len(data) < count:
            chunk = self.sock.recv(min(count - len(data), 1 << 20))
            if not chunk:
                raise EOFError
            data += chunk
        return bytes(data)

    def read_frame(self) -> Tuple[int, int, int, bytes]:
        length, kind, flags, stream = HEADER.unpack(self.recv_exact(HEADER.size))
        return kind, flags, stream, self.recv_exact(length)

    def send_frame(self, kind: int, stream: int, payload: bytes = b"", flags: int = 0) -> None:
        self.sock.sendall(HEADER.pack(len(payload), kind, flags, stream) + payload)

    def handshake(self, max_frame_size: int = 4 << 20) -> pb.Hello:
        assert self.recv_exact(8) == PREFACE
        kind, _, _, payload = self.read_frame()
        assert kind == FrameType.HELLO
        self.sock.sendall(PREFACE)
        welcome = pb.Welcome(major_version=1, max_frame_size=max_frame_size, max_message_size=max(16 << 20, max_frame_size),
                             max_concurrent_calls=8, max_batch_events=100, principal="fake")
        self.send_frame(FrameType.HELLO, 0, welcome.SerializeToString())
        return pb.Hello.FromString(payload)

    def read_request(self) -> Tuple[int, bytes]:
        """Reads frames up to a request MESSAGE; returns its stream and payload."""
        while True:
            kind, _, stream, payload = self.read_frame()
            if kind == FrameType.MESSAGE:
                return stream, payload

    def ok(self, stream: int, message: bytes, flags: int = 0) -> None:
        self.send_frame(FrameType.MESSAGE, stream, message, flags)
        self.send_frame(FrameType.TRAILERS, stream, pb.Status(code=0).SerializeToString())


class FakeServer:
    """Accepts one connection and plays `script` on it in a thread."""

    def __init__(self, script: Callable[[Peer], Any], receive_buffer: Optional[int] = None) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        if receive_buffer is not None:  # inherited by the accepted socket; a small one stalls a client's send sooner
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.result: List[Any] = []
        self.thread = threading.Thread(target=self._run, args=(script,), daemon=True)
        self.thread.start()

    def _run(self, script: Callable[[Peer], Any]) -> None:
        sock, _ = self.listener.accept()
        try:
            self.result.append(script(Peer(sock)))
        except BaseException as error:  # reported by finish()
            self.result.append(error)
        finally:
            sock.close()
            self.listener.close()

    def finish(self) -> Any:
        self.thread.join(10)
        assert not self.thread.is_alive(), "the fake server's script did not end"
        [outcome] = self.result
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def test_token_and_name_are_sent_in_hello() -> None:
    server = FakeServer(lambda peer: peer.handshake())
    with Client(server.address, token="vgl_secret", client_name="tests/1") as client:
        assert client.welcome.principal == "fake"
    hello = server.finish()
    assert (hello.auth_token, hello.client_name, hello.major_version) == ("vgl_secret", "tests/1", 1)
    assert hello.max_frame_size >= 131_072


def test_http_answer_is_a_protocol_error() -> None:
    def script(peer: Peer) -> None:
        peer.recv_exact(8)
        peer.sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    server = FakeServer(script)
    with pytest.raises(ProtocolError, match="HTTP"):
        Client(server.address).connect()
    server.finish()


def test_goaway_at_hello_raises_its_code() -> None:
    def script(peer: Peer) -> None:
        peer.recv_exact(8)
        peer.read_frame()
        peer.sock.sendall(PREFACE)
        goaway = pb.GoAway(code=16, message="the token is not valid")
        peer.send_frame(FrameType.GOAWAY, 0, goaway.SerializeToString())

    server = FakeServer(script)
    with pytest.raises(Unauthenticated, match="token is not valid") as refused:
        Client(server.address, token="wrong").connect()
    assert refused.value.from_server
    server.finish()


def test_server_ping_is_answered_and_compressed_messages_inflate() -> None:
    def script(peer: Peer) -> bytes:
        peer.handshake()
        ping = pb.Ping(opaque=42).SerializeToString()
        peer.send_frame(FrameType.PING, 0, ping)
        kind, flags, stream, request = peer.read_frame()
        pong = None
        while kind != FrameType.MESSAGE:  # HEADERS (and the PONG, in whatever order)
            if kind == FrameType.PONG:
                pong = request
            kind, flags, stream, request = peer.read_frame()
        assert flags == END_STREAM and pb.GetRequest.FromString(request).id == "x"
        response = pb.GetResponse(event=pb.AuditEvent(id="x", action="a" * 5000)).SerializeToString()
        peer.ok(stream, zlib.compress(response), COMPRESSED)
        if pong is None:
            kind, _, _, pong = peer.read_frame()
            assert kind == FrameType.PONG
        return pong

    server = FakeServer(script)
    with Client(server.address) as client:
        assert client.get("x").action == "a" * 5000
    assert pb.Ping.FromString(server.finish()).opaque == 42


def test_goaway_fails_only_the_calls_the_server_did_not_accept() -> None:
    def script(peer: Peer) -> None:
        peer.handshake()
        streams = []
        while len(streams) < 2:
            kind, _, stream, _ = peer.read_frame()
            if kind == FrameType.MESSAGE:
                streams.append(stream)
        assert streams == [1, 3]
        goaway = pb.GoAway(last_stream_id=1, code=14, message="shutting down")
        peer.send_frame(FrameType.GOAWAY, 0, goaway.SerializeToString())
        peer.ok(1, pb.GetResponse(event=pb.AuditEvent(id="one")).SerializeToString())

    server = FakeServer(script)
    client = Client(server.address)
    connection = client.connection()
    first = connection.open_call(Method.GET, pb.GetRequest(id="one").SerializeToString(), timeout=10)
    second = connection.open_call(Method.GET, pb.GetRequest(id="two").SerializeToString(), timeout=10)
    with pytest.raises(Unavailable, match="shutting down") as refused:
        second.receive(timeout=10)
    assert refused.value.from_server
    message = first.receive(timeout=10)
    assert isinstance(message, bytes) and pb.GetResponse.FromString(message).event.id == "one"
    assert first.receive(timeout=10) is None
    assert not connection.usable  # the next call opens a new connection
    server.finish()
    client.close()


def test_protocol_violation_fails_calls_and_sends_goaway() -> None:
    def script(peer: Peer) -> Tuple[int, bytes]:
        peer.handshake()
        kind = 0
        while kind != FrameType.MESSAGE:
            kind, _, _, _ = peer.read_frame()
        peer.send_frame(0x42, 0)  # no such frame type
        kind, _, _, payload = peer.read_frame()
        return kind, payload

    server = FakeServer(script)
    client = Client(server.address)
    with pytest.raises(ProtocolError, match="0x42"):
        client.get("x")
    kind, payload = server.finish()
    assert kind == FrameType.GOAWAY and pb.GoAway.FromString(payload).code == 3
    client.close()


MALFORMED = b"\x0a\x05ab"  # field 1, 5 bytes long, but only 2 follow


@pytest.mark.parametrize("frame_type", [FrameType.HELLO, FrameType.GOAWAY])
def test_malformed_handshake_frame_is_a_protocol_error(frame_type: FrameType) -> None:
    def script(peer: Peer) -> None:
        peer.recv_exact(8)
        peer.read_frame()
        peer.sock.sendall(PREFACE)
        peer.send_frame(frame_type, 0, MALFORMED)

    server = FakeServer(script)
    with pytest.raises(ProtocolError, match="could not be decoded"):
        Client(server.address).connect()
    server.finish()


def test_malformed_aggregate_response_is_a_protocol_error() -> None:
    def script(peer: Peer) -> None:
        peer.handshake()
        stream, _ = peer.read_request()
        peer.ok(stream, MALFORMED)

    server = FakeServer(script)
    with Client(server.address) as client:
        with pytest.raises(ProtocolError, match="Aggregate response could not be decoded"):
            client.aggregate()
    server.finish()


def test_server_time_outside_datetime_range_is_a_protocol_error() -> None:
    def script(peer: Peer) -> None:
        peer.handshake()
        stream, _ = peer.read_request()
        response = pb.IngestResponse(first_seq=1, last_seq=1, count=1)
        response.received_at.seconds = 2**62  # far past year 9999
        peer.ok(stream, response.SerializeToString())

    server = FakeServer(script)
    with Client(server.address) as client:
        with pytest.raises(ProtocolError, match="outside years 1-9999"):
            client.ingest([{"tenant": "t", "action": "a"}])
    server.finish()


@pytest.mark.parametrize("retry_after_ms", ["99999999999999999999", "9" * 400])
def test_huge_retry_after_is_capped_at_an_hour(retry_after_ms: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def script(peer: Peer) -> int:
        peer.handshake()
        stream, _ = peer.read_request()
        status = pb.Status(code=8, message="slow down")
        status.metadata["vigil.retry-after-ms"] = retry_after_ms
        peer.send_frame(FrameType.TRAILERS, stream, status.SerializeToString())
        stream, request = peer.read_request()  # the same batch again, after the pause
        peer.ok(stream, pb.IngestResponse(first_seq=1, last_seq=1, count=1).SerializeToString())
        return len(pb.IngestRequest.FromString(request).events)

    pauses: List[float] = []

    def pause(ingester: BatchingIngester, delay: float) -> bool:  # record the pause instead of taking it
        pauses.append(delay)
        return False

    monkeypatch.setattr(BatchingIngester, "_pause", pause)
    server = FakeServer(script)
    with Client(server.address) as client:
        with BatchingIngester(client, max_delay=None, backoff=(0.01, 0.02)) as ingester:
            ingester.add({"tenant": "t", "action": "a"})
            [result] = ingester.flush()
    assert result.first_seq == 1 and ingester.retries == 1
    assert pauses == [3600.0]
    assert server.finish() == 1


def test_stalled_send_fails_the_connection_within_send_timeout() -> None:
    released = threading.Event()

    def script(peer: Peer) -> None:
        peer.handshake(max_frame_size=32 << 20)
        released.wait(10)  # never reads the request; without a send timeout the client hangs till here

    server = FakeServer(script, receive_buffer=64 << 10)
    filler = os.urandom(6 << 20).hex()  # 12 MiB: more than the socket buffers hold
    events = [pb.AuditEvent(tenant="t", action="a", description=filler[i : i + (1 << 20)]) for i in range(0, len(filler), 1 << 20)]
    with Client(server.address, send_timeout=0.5) as client:
        connection = client.connection()
        start = time.monotonic()
        try:
            with pytest.raises(VigilConnectionError, match="send_timeout"):
                client.ingest(events)
            elapsed = time.monotonic() - start
        finally:
            released.set()
        assert elapsed < 5
        assert connection.closed  # part of a frame may be out: the connection cannot be used again
    server.finish()


def test_pings_while_not_reading_leave_at_most_one_pong_pending() -> None:
    first_done = threading.Event()

    def script(peer: Peer) -> List[int]:
        peer.handshake(max_frame_size=32 << 20)
        first, _ = peer.read_request()
        kind, _, second, _ = peer.read_frame()
        assert kind == FrameType.HEADERS
        length, kind, _, _ = HEADER.unpack(peer.recv_exact(HEADER.size))
        assert kind == FrameType.MESSAGE
        # The client is now writing the second request (holding its write lock) and we do not read it.
        for opaque in range(1, 1001):
            peer.send_frame(FrameType.PING, 0, pb.Ping(opaque=opaque).SerializeToString())
        peer.send_frame(FrameType.TRAILERS, first, pb.Status(code=0).SerializeToString())
        assert first_done.wait(10)  # the client's reader has handled every PING before these TRAILERS
        peer.recv_exact(length)
        pongs = []
        peer.sock.settimeout(0.5)
        try:
            while True:  # the PONGs the client wrote after its request
                kind, _, _, payload = peer.read_frame()
                assert kind == FrameType.PONG
                pongs.append(pb.Ping.FromString(payload).opaque)
        except socket.timeout:
            pass
        peer.sock.settimeout(None)
        peer.ok(second, pb.GetResponse().SerializeToString())
        return pongs

    server = FakeServer(script, receive_buffer=64 << 10)
    with Client(server.address) as client:
        connection = client.connection()
        first = connection.open_call(Method.GET, pb.GetRequest(id="x").SerializeToString(), timeout=10)

        def wait_for_first() -> None:
            assert first.receive(timeout=10) is None
            first_done.set()

        waiter = threading.Thread(target=wait_for_first, daemon=True)
        waiter.start()
        second = connection.open_call(Method.GET, os.urandom(12 << 20), timeout=10)  # returns once the server read it
        assert second.receive(timeout=10) == b""
        waiter.join(10)
    # Every PING came while the request was being written: only the newest one's PONG was kept.
    assert server.finish() == [1000]


def test_reader_stuck_writing_pongs_fails_the_connection_within_send_timeout() -> None:
    def script(peer: Peer) -> None:
        peer.handshake()
        peer.sock.settimeout(5)
        try:
            for _ in range(64):  # 64 MiB of PINGs, and not one PONG read
                peer.send_frame(FrameType.PING, 0, b"p" * (1 << 20))
        except OSError:
            pass  # the client gave up and closed the connection

    server = FakeServer(script, receive_buffer=64 << 10)
    client = Client(server.address, send_timeout=0.5)
    connection = client.connection()
    wait_for(lambda: connection.closed, 5, "the connection to fail")  # without a bound, the reader blocks for good
    with pytest.raises(VigilConnectionError, match="send_timeout"):
        connection.ping(timeout=1)
    client.close()
    server.finish()


@pytest.mark.parametrize(
    "code, refused_type",
    [(14, Unavailable), (16, Unauthenticated), (13, Internal)],  # shutdown, token revoked, server fault
)
def test_calls_accepted_before_goaway_may_have_run_when_the_connection_drops(code: int, refused_type: type) -> None:
    def script(peer: Peer) -> None:
        peer.handshake()
        for _ in range(3):
            peer.read_request()
        goaway = pb.GoAway(last_stream_id=3, code=code, message="going away")
        peer.send_frame(FrameType.GOAWAY, 0, goaway.SerializeToString())
        # ... and closes without answering streams 1 and 3.

    server = FakeServer(script)
    client = Client(server.address)
    connection = client.connection()
    calls = [connection.open_call(Method.INGEST, pb.IngestRequest().SerializeToString(), timeout=10) for _ in range(3)]
    errors = []
    for call in calls:
        with pytest.raises(VigilError) as failed:
            call.receive(timeout=10)
        errors.append(failed.value)
    # Streams 1 and 3 were accepted, then left unanswered: they may have run (may have been stored),
    # whatever the GOAWAY's code; its code and message are in the message.
    assert [type(error) for error in errors[:2]] == [VigilConnectionError, VigilConnectionError]
    assert "may have run" in errors[0].message and "going away" in errors[0].message
    assert refused_type(code).code.name in errors[1].message
    # Stream 5 was above last_stream_id: never run, the GOAWAY's own status from the server.
    assert type(errors[2]) is refused_type and errors[2].from_server and errors[2].message == "going away"
    server.finish()
    client.close()


def _ingest_answer(peer: Peer, stream: int, request: bytes, first_seq: int) -> int:
    """Answers an Ingest with OK; returns how many events it carried."""
    count = len(pb.IngestRequest.FromString(request).events)
    peer.ok(stream, pb.IngestResponse(first_seq=first_seq, last_seq=first_seq + count - 1, count=count).SerializeToString())
    return count


def _callback_failures(caplog: pytest.LogCaptureFixture) -> List[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("vigil_client") and r.exc_info and "callback" in r.getMessage()]


def test_callback_exceptions_are_logged_and_lose_no_batch(caplog: pytest.LogCaptureFixture) -> None:
    def script(peer: Peer) -> List[int]:
        peer.handshake()  # max_batch_events=100
        stream, request = peer.read_request()
        peer.send_frame(FrameType.TRAILERS, stream, pb.Status(code=3, message="bad event").SerializeToString())
        sizes = [len(pb.IngestRequest.FromString(request).events)]
        for first_seq in (1, 101):
            sizes.append(_ingest_answer(peer, *peer.read_request(), first_seq))
        return sizes

    results: List[IngestResult] = []
    errors: List[VigilError] = []

    def on_result(result: IngestResult) -> None:
        results.append(result)
        raise RuntimeError("on_result broke")

    def on_error(error: VigilError) -> None:
        errors.append(error)
        raise RuntimeError("on_error broke")

    server = FakeServer(script)
    client = Client(server.address)
    try:
        ingester = BatchingIngester(client, max_delay=None, on_result=on_result, on_error=on_error)
        # Buffered before there is a connection (the limit is then max_events, 1000); once connected,
        # the server's max_batch_events splits the buffer into three batches, all sent by close().
        ingester.add_many({"tenant": "t", "action": "a"} for _ in range(250))
        client.connect()
        with pytest.raises(InvalidArgument, match="bad event") as failed:  # the batch's outcome, not the callback's
            ingester.close()
    finally:
        client.close()
    assert errors == [failed.value] and len(failed.value.batch) == 100
    assert [r.count for r in results] == [100, 50] and ingester.events_sent == 150
    assert server.finish() == [100, 100, 50]
    logged = _callback_failures(caplog)
    assert [str(r.exc_info[1]) for r in logged] == ["on_error broke", "on_result broke", "on_result broke"]


def test_callback_exception_on_the_timer_thread_keeps_the_timer_running(caplog: pytest.LogCaptureFixture) -> None:
    def script(peer: Peer) -> None:
        peer.handshake()
        for first_seq in (1, 2):
            _ingest_answer(peer, *peer.read_request(), first_seq)

    flushed = threading.Semaphore(0)

    def on_result(result: IngestResult) -> None:
        flushed.release()
        raise RuntimeError("on_result broke")

    server = FakeServer(script)
    with Client(server.address) as client:
        with BatchingIngester(client, max_delay=0.05, on_result=on_result) as ingester:
            ingester.add({"tenant": "t", "action": "a"})
            assert flushed.acquire(timeout=10), "no timed flush"
            ingester.add({"tenant": "t", "action": "b"})
            assert flushed.acquire(timeout=10), "the callback's exception stopped the timer"
    server.finish()
    assert ingester.batches_sent == 2
    logged = _callback_failures(caplog)
    assert [(r.threadName, str(r.exc_info[1])) for r in logged] == [("vigil-batching-ingester", "on_result broke")] * 2


def _outcome(action: Callable[[], Any]) -> Any:
    try:
        return action()
    except BaseException as error:  # checked by the caller
        return error


def test_close_ends_a_retry_pause_and_reports_the_batch() -> None:
    def script(peer: Peer) -> int:
        peer.handshake()
        stream, request = peer.read_request()
        status = pb.Status(code=8, message="slow down")
        status.metadata["vigil.retry-after-ms"] = "3600000"  # an hour
        peer.send_frame(FrameType.TRAILERS, stream, status.SerializeToString())
        return len(pb.IngestRequest.FromString(request).events)

    errors: List[VigilError] = []
    server = FakeServer(script)
    with Client(server.address) as client:
        ingester = BatchingIngester(client, max_delay=0.01, on_error=errors.append)
        ingester.add({"tenant": "t", "action": "a"})
        wait_for(lambda: ingester.retries == 1, 10, "the timer thread to pause before its retry")
        outcome: List[Any] = []
        closer = threading.Thread(target=lambda: outcome.append(_outcome(ingester.close)), daemon=True)
        closer.start()
        closer.join(10)
        assert not closer.is_alive(), "close() waited out the server's retry-after"
    [error] = outcome
    # Reported, not dropped: to on_error and raised by close, with the batch and its key to send it again.
    assert isinstance(error, Cancelled) and not error.from_server and "closed" in error.message
    assert errors == [error] and len(error.batch) == 1 and error.idempotency_key == f"{ingester.key_prefix}-0"
    assert isinstance(error.__cause__, ResourceExhausted) and error.__cause__.retry_after_ms == 3_600_000
    assert ingester.batches_sent == 0 and ingester.buffered == 0
    assert server.finish() == 1


def test_close_keeps_a_retry_that_ends_within_its_timeout() -> None:
    def script(peer: Peer) -> int:
        peer.handshake()
        stream, request = peer.read_request()
        status = pb.Status(code=8, message="slow down")
        status.metadata["vigil.retry-after-ms"] = "300"
        peer.send_frame(FrameType.TRAILERS, stream, status.SerializeToString())
        stream, request = peer.read_request()  # the same batch again, after the pause
        peer.ok(stream, pb.IngestResponse(first_seq=1, last_seq=1, count=1).SerializeToString())
        return len(pb.IngestRequest.FromString(request).events)

    errors: List[VigilError] = []
    server = FakeServer(script)
    with Client(server.address) as client:
        ingester = BatchingIngester(client, max_delay=0.01, backoff=(0.01, 0.02), on_error=errors.append)
        ingester.add({"tenant": "t", "action": "a"})
        wait_for(lambda: ingester.retries == 1, 10, "the timer thread to pause before its retry")
        ingester.close(timeout=30)  # a batch caught by a short refusal at close is still stored
    assert errors == [] and ingester.batches_sent == 1 and ingester.results[0].first_seq == 1
    assert server.finish() == 1
