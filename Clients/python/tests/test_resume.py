"""Surviving failures: subscriptions resumed after kill -9 and shutdown, the batching ingester's retries."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any, List, Optional

from conftest import ServerProcess, make_events, wait_for

from vigil_client import (
    BatchingIngester,
    Client,
    IngestResult,
    Unavailable,
    VigilConnectionError,
    VigilError,
    pb,
)


def _ids(events: List[Optional[pb.AuditEvent]]) -> List[str]:
    assert None not in events, "an event did not arrive in time"
    return [event.request_id for event in events]  # type: ignore[union-attr]


def _names(start: int, stop: int) -> List[str]:
    return [f"r-{n:05d}" for n in range(start, stop)]


def test_subscribe_resumes_after_kill9(fresh_server: ServerProcess, token: str, tenant: str, base_time: dt.datetime) -> None:
    interruptions: List[VigilError] = []
    with Client(fresh_server.address, token=token) as writer, Client(fresh_server.address, token=token) as reader:
        writer.ingest(make_events(tenant, 50, base_time))
        live = reader.subscribe(
            tenants=[tenant], since=base_time, window=8, backoff=(0.05, 0.5),
            on_reconnect=lambda error, attempt, delay, cursor: interruptions.append(error),
        )
        first = [live.next_event(timeout=20) for _ in range(20)]
        assert _ids(first) == _names(0, 20)

        # Crash while catching up (30 stored events not read yet, some in flight).
        fresh_server.kill9()
        fresh_server.restart()
        writer.reset()
        writer.ingest(make_events(tenant, 30, base_time, start=50))
        rest = [live.next_event(timeout=30) for _ in range(60)]
        assert _ids(rest) == _names(20, 80)
        assert live.reconnects >= 1 and interruptions
        assert all(isinstance(error, Unavailable) for error in interruptions)

        # Crash again while following live.
        fresh_server.kill9()
        fresh_server.restart()
        writer.reset()
        writer.ingest(make_events(tenant, 10, base_time, start=80))
        more = [live.next_event(timeout=30) for _ in range(10)]
        assert _ids(more) == _names(80, 90)
        assert live.next_event(timeout=0.5) is None  # nothing twice, nothing extra
        seqs = [e.seq for e in first + rest + more]  # type: ignore[union-attr]
        assert seqs == sorted(seqs) and len(set(seqs)) == 90
        live.close()


def test_subscribe_resumes_after_graceful_shutdown(
    fresh_server: ServerProcess, token: str, tenant: str, base_time: dt.datetime
) -> None:
    interruptions: List[VigilError] = []
    with Client(fresh_server.address, token=token) as client:
        client.ingest(make_events(tenant, 10, base_time))
        live = client.subscribe(
            tenants=[tenant], since=base_time, backoff=(0.05, 0.5),
            on_reconnect=lambda error, attempt, delay, cursor: interruptions.append(error),
        )
        assert _ids([live.next_event(timeout=20) for _ in range(10)]) == _names(0, 10)
        assert fresh_server.terminate() == 0  # GOAWAY; the subscription ends with UNAVAILABLE
        fresh_server.restart()
        client.ingest(make_events(tenant, 5, base_time, start=10))
        assert _ids([live.next_event(timeout=30) for _ in range(5)]) == _names(10, 15)
        # UNAVAILABLE: the subscription's trailers (with vigil.cursor), or the connection closing
        # after GOAWAY when the server's close overtakes those trailers; either way nothing is lost.
        assert isinstance(interruptions[0], Unavailable)
        live.close()


def test_batching_ingester_flushes_by_size(client: Client, tenant: str, base_time: dt.datetime) -> None:
    ingester = BatchingIngester(client, max_events=50, max_delay=None, key_prefix=f"{tenant}-size")
    ingester.add_many(make_events(tenant, 120, base_time))
    assert ingester.batches_sent == 2 and ingester.buffered == 20
    ingester.close()
    assert ingester.batches_sent == 3 and ingester.events_sent == 120
    assert [r.count for r in ingester.results] == [50, 50, 20]
    assert [r.first_seq for r in ingester.results] == sorted(r.first_seq for r in ingester.results)
    assert client.aggregate(tenants=[tenant]).count == 120


def test_batching_ingester_first_batch_respects_the_servers_limit(
    server_with: Any, token: str, tenant: str, base_time: dt.datetime
) -> None:
    small = server_with("--max-batch-events", "5")
    fresh = Client(small.address, token=token)  # not entered: not connected, no Welcome known yet
    try:
        ingester = BatchingIngester(fresh, max_events=50, max_delay=None, key_prefix=f"{tenant}-small")
        ingester.add_many(make_events(tenant, 12, base_time))
        ingester.close()
        assert [r.count for r in ingester.results] == [5, 5, 2]
        assert fresh.aggregate(tenants=[tenant]).count == 12
    finally:
        fresh.close()


def test_batching_ingester_flushes_by_time(client: Client, tenant: str, base_time: dt.datetime) -> None:
    flushed: List[IngestResult] = []
    with BatchingIngester(client, max_events=1000, max_delay=0.2, on_result=flushed.append) as ingester:
        ingester.add_many(make_events(tenant, 5, base_time))
        wait_for(lambda: ingester.batches_sent == 1, 10, "the first timed flush")
        assert ingester.buffered == 0 and flushed[0].count == 5
        ingester.add_many(make_events(tenant, 3, base_time, start=5))
        wait_for(lambda: ingester.batches_sent == 2, 10, "the second timed flush")
    assert [r.count for r in flushed] == [5, 3]
    assert client.aggregate(tenants=[tenant]).count == 8


class LostAnswerClient(Client):
    """Stores the first batch, then loses its answer (the connection drops before it arrives)."""

    lost = 0

    def ingest(self, *args: Any, **kwargs: Any) -> IngestResult:
        result = super().ingest(*args, **kwargs)
        if self.lost == 0:
            self.lost += 1
            self.reset()
            raise VigilConnectionError(message="the connection dropped before the answer arrived")
        return result


def test_batching_ingester_retries_with_the_same_key(
    server: ServerProcess, token: str, tenant: str, base_time: dt.datetime
) -> None:
    with LostAnswerClient(server.address, token=token) as client:
        ingester = BatchingIngester(client, max_events=100, max_delay=None, backoff=(0.01, 0.05))
        ingester.add_many(make_events(tenant, 40, base_time))
        [result] = ingester.flush()
        assert ingester.retries == 1 and result.replayed and result.count == 40
        ingester.close()
        assert client.aggregate(tenants=[tenant]).count == 40  # stored once


def test_batching_ingester_waits_for_a_restarted_server(
    fresh_server: ServerProcess, token: str, tenant: str, base_time: dt.datetime
) -> None:
    with Client(fresh_server.address, token=token, connect_timeout=2) as client:
        ingester = BatchingIngester(client, max_events=100, max_delay=None, max_retries=1000, backoff=(0.02, 0.2))
        ingester.add_many(make_events(tenant, 10, base_time))
        fresh_server.kill9()
        outcome: List[Any] = []
        flusher = threading.Thread(target=lambda: outcome.append(_try(ingester.flush)))
        flusher.start()
        wait_for(lambda: ingester.retries >= 2, 20, "the ingester to retry against the stopped server")
        fresh_server.restart()
        flusher.join(60)
        assert not flusher.is_alive()
        [results] = outcome
        assert [r.count for r in results] == [10]
        ingester.close()
        assert client.aggregate(tenants=[tenant]).count == 10


def _try(action: Any) -> Any:
    try:
        return action()
    except Exception as error:  # reported by the assertion on the result
        return error
