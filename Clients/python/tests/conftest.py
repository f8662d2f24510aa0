"""Fixtures: a real `vigil serve` process per session (and fresh ones for restart tests).

Environment:
    VIGIL_BIN          the server binary (default: .build/debug/vigil in the repository,
                       else .build/release/vigil, else `vigil` on PATH; tests that need a
                       server are skipped when there is none)
    VIGIL_SERVER_ARGS  extra flags for `vigil serve` (word-split with shlex), e.g.
                       "--admin-token-file /path/to/token"
    VIGIL_TOKEN        the token the clients send in HELLO
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import pytest

HERE = Path(__file__).resolve().parent
PACKAGE_ROOT = HERE.parent
REPO = PACKAGE_ROOT.parent.parent
sys.path.insert(0, str(PACKAGE_ROOT))

from vigil_client import Client  # noqa: E402

STARTUP_TIMEOUT = 30.0


def vigil_binary() -> Optional[str]:
    explicit = os.environ.get("VIGIL_BIN")
    if explicit:
        return explicit
    for candidate in (REPO / ".build" / "debug" / "vigil", REPO / ".build" / "release" / "vigil"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("vigil")


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, what: str = "a condition") -> Any:
    """Polls `condition` until it returns something truthy; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.01)


class ServerProcess:
    """`vigil serve` on 127.0.0.1 with a data directory; restartable on the same port."""

    def __init__(self, binary: str, directory: Path, args: Sequence[str] = ()) -> None:
        self.binary = binary
        self.directory = directory
        self.data_dir = directory / "data"
        self.log_path = directory / "server.log"
        self.extra_args = [*shlex.split(os.environ.get("VIGIL_SERVER_ARGS", "")), *args]
        self.port = 0
        self.process: Optional[subprocess.Popen] = None  # type: ignore[type-arg]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.process is None, "already running"
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [self.binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(self.data_dir),
             "--retention", "forever", *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        log.close()
        process = self.process

        def listening() -> Optional[int]:
            if process.poll() is not None:
                raise AssertionError(f"vigil serve exited with {process.returncode}:\n{self.log_tail()}")
            text = self.log_path.read_bytes()[offset:].decode("utf-8", "replace")
            match = re.search(r"listening on \S+:(\d+)", text)
            return int(match.group(1)) if match else None

        self.port = wait_for(listening, STARTUP_TIMEOUT, "the server to listen")

    def kill9(self) -> None:
        """SIGKILL: a crash."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.process = None

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM: a graceful shutdown (GOAWAY, calls finish). Returns the exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.process = None
        return code

    def restart(self) -> None:
        self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.terminate(timeout=15)
        self.process = None

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text("utf-8", "replace").splitlines()[-lines:])


def _binary_or_skip() -> str:
    binary = vigil_binary()
    if not binary or not os.access(binary, os.X_OK):
        pytest.skip("no vigil server binary: set VIGIL_BIN or build .build/debug/vigil")
    return binary


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the session; tests keep apart by tenant."""
    process = ServerProcess(_binary_or_skip(), tmp_path_factory.mktemp("vigil-server"))
    process.start()
    yield process
    process.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server of the test's own, for tests that kill or restart it."""
    process = ServerProcess(_binary_or_skip(), tmp_path)
    process.start()
    yield process
    process.stop()


@pytest.fixture
def server_with(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Starts servers of the test's own with extra `vigil serve` flags: ``server_with("--heartbeat-interval", "1")``."""
    started: List[ServerProcess] = []

    def start(*args: str) -> ServerProcess:
        process = ServerProcess(_binary_or_skip(), tmp_path / f"server-{len(started)}", args)
        process.directory.mkdir()
        started.append(process)
        process.start()
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def token() -> str:
    return os.environ.get("VIGIL_TOKEN", "")


@pytest.fixture
def client(server: ServerProcess, token: str) -> Iterator[Client]:
    with Client(server.address, token=token, timeout=30) as c:
        yield c


@pytest.fixture
def tenant(request: pytest.FixtureRequest) -> str:
    """A tenant of the test's own."""
    name = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")[:60]
    return f"t-{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def base_time() -> dt.datetime:
    """A whole minute a day ago: event times in the past, whatever today is."""
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
    return now.replace(second=0, microsecond=0)


def make_events(tenant: str, count: int, base: dt.datetime, start: int = 0, **overrides: Any) -> List[Dict[str, Any]]:
    """`count` events in the JSON form, one second apart, named by requestId ``r-<n>``."""
    actions = ["auth.login", "user.create", "user.update", "invoice.approve"]
    outcomes = ["SUCCESS", "FAILURE", "SUCCESS", "DENIED"]
    events = []
    for n in range(start, start + count):
        event: Dict[str, Any] = {
            "occurredAt": (base + dt.timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tenant": tenant,
            "actor": {"id": f"u-{n % 7}", "type": "USER", "name": f"User {n % 7}", "email": f"u{n % 7}@example.test"},
            "action": actions[n % len(actions)],
            "category": "LOGIN" if n % len(actions) == 0 else "UPDATE",
            "resource": {"type": "user", "id": f"user-{n % 11}", "name": f"user {n % 11}"},
            "outcome": outcomes[n % len(outcomes)],
            "sourceIp": f"10.0.{n % 3}.{n % 250 + 1}",
            "requestId": f"r-{n:05d}",
            "metadata": {"region": "eu-west" if n % 2 else "us-east"},
            "description": f"event number {n}",
        }
        event.update(overrides)
        events.append(event)
    return events
