"""What the real server never does, played by a scripted fake: server PINGs, COMPRESSED
responses, GOAWAY with calls in flight, protocol violations, refusals at the handshake."""

from __future__ import annotations

import socket
import threading
import zlib
from typing import Any, Callable, List, Tuple

import pytest

from vigil_client import (
    Client,
    Method,
    ProtocolError,
    Unauthenticated,
    Unavailable,
    pb,
)
from vigil_client.wire import COMPRESSED, END_STREAM, HEADER, PREFACE, FrameType


class Peer:
    """The fake server's end of one connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def recv_exact(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def read_frame(self) -> Tuple[int, int, int, bytes]:
        length, kind, flags, stream = HEADER.unpack(self.recv_exact(HEADER.size))
        return kind, flags, stream, self.recv_exact(length)

    def send_frame(self, kind: int, stream: int, payload: bytes = b"", flags: int = 0) -> None:
        self.sock.sendall(HEADER.pack(len(payload), kind, flags, stream) + payload)

    def handshake(self) -> pb.Hello:
        assert self.recv_exact(8) == PREFACE
        kind, _, _, payload = self.read_frame()
        assert kind == FrameType.HELLO
        self.sock.sendall(PREFACE)
        welcome = pb.Welcome(major_version=1, max_frame_size=4 << 20, max_message_size=16 << 20,
                             max_concurrent_calls=8, max_batch_events=100, principal="fake")
        self.send_frame(FrameType.HELLO, 0, welcome.SerializeToString())
        return pb.Hello.FromString(payload)

    def ok(self, stream: int, message: bytes, flags: int = 0) -> None:
        self.send_frame(FrameType.MESSAGE, stream, message, flags)
        self.send_frame(FrameType.TRAILERS, stream, pb.Status(code=0).SerializeToString())


class FakeServer:
    """Accepts one connection and plays `script` on it in a thread."""

    def __init__(self, script: Callable[[Peer], Any]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
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
