"""The client against a real server: calls, paging, errors, deadlines, frames, flow control."""

from __future__ import annotations

import base64
import datetime as dt
import gc
import os
import zlib
import threading
from typing import Any, List

import pytest
from conftest import ServerProcess, make_events

from vigil_client import (
    Client,
    DeadlineExceeded,
    InvalidArgument,
    Method,
    NotFound,
    ResourceExhausted,
    Unauthenticated,
    Unimplemented,
    event_to_dict,
    pb,
    to_event,
    to_events,
)
from vigil_client.connection import TIMEOUT


def _ids(events: List[pb.AuditEvent]) -> List[str]:
    return [event.request_id for event in events]


def test_handshake_reports_limits(client: Client) -> None:
    welcome = client.welcome
    assert welcome.major_version == 1
    assert welcome.max_frame_size >= 131_072
    assert welcome.max_batch_events > 0 and welcome.max_concurrent_calls > 0
    assert welcome.principal
    assert client.ping() >= 0


def test_ingest_query_round_trip(client: Client, tenant: str, base_time: dt.datetime) -> None:
    dicts = make_events(tenant, 3, base_time)
    dicts[1]["changes"] = [{"field": "role", "old": "viewer", "new": "admin"}]
    message = pb.AuditEvent()
    message.occurred_at.FromDatetime(base_time + dt.timedelta(seconds=10))
    message.tenant = tenant
    message.actor.id = "svc-1"
    message.actor.type = pb.ActorType.SERVICE
    message.action = "pod.restart"
    message.request_id = "r-message"
    result = client.ingest([*dicts, message], idempotency_key=f"{tenant}-1")
    assert result.count == 4 and result.last_seq - result.first_seq == 3 and not result.replayed
    assert result.received_at.tzinfo is not None

    events = list(client.query(tenants=[tenant], order="oldest"))
    assert _ids(events) == ["r-00000", "r-00001", "r-00002", "r-message"]
    assert [e.seq for e in events] == list(range(result.first_seq, result.last_seq + 1))
    for sent, got in zip(dicts, events):
        back = event_to_dict(got)
        for key in ("id", "seq", "receivedAt"):
            back.pop(key)
        assert back == sent
    assert events[3].actor.type == pb.ActorType.SERVICE
    assert _ids(list(client.query(tenants=[tenant]))) == ["r-message", "r-00002", "r-00001", "r-00000"]
    assert _ids(list(client.query(tenants=[tenant], actions=["user.*"], order="oldest"))) == ["r-00001", "r-00002"]


def test_paging_with_cursors_over_2000_events(client: Client, tenant: str, base_time: dt.datetime) -> None:
    events = make_events(tenant, 2000, base_time)
    for start in range(0, 2000, 500):
        client.ingest(events[start : start + 500])
    expected = [e["requestId"] for e in events]

    pages = client.query_pages(tenants=[tenant], order="oldest", page_size=300)
    seen = []
    for page in pages:
        assert page.cursor and len(page) <= 300
        seen += _ids(page.events)
    assert seen == expected
    assert pages.pages == 7 and pages.exhausted is True
    assert pages.stats["events-returned"] == 2000

    # Read three pages, stop (the call is cancelled), resume from the cursor: no gap, no repeat.
    first = client.query_pages(tenants=[tenant], order="newest", page_size=250)
    head = []
    for _ in range(3):
        head += _ids(next(first).events)
    first.close()
    rest = [e.request_id for page in first.resume() for e in page.events]
    assert head + rest == expected[::-1]

    # A limit cuts the call; the trailers' cursor continues it, call after call.
    collected, calls, cursor = [], 0, None
    while True:
        call = client.query(tenants=[tenant], order="oldest", limit=700, page_size=200, cursor=cursor)
        got = _ids(list(call))
        calls += 1
        collected += got
        if not got:
            break
        cursor = call.cursor
        assert call.metadata["vigil.events-returned"] == str(len(got))
    assert collected == expected and calls == 4

    # Events ingested between pages do not disturb a paged query (its snapshot is pinned).
    walk = client.query_pages(tenants=[tenant], order="newest", page_size=1000)
    one = next(walk)
    client.ingest(make_events(tenant, 5, base_time + dt.timedelta(hours=1), start=5000))
    two = next(walk)
    assert _ids(one.events) + _ids(two.events) == expected[::-1]
    with pytest.raises(StopIteration):
        next(walk)


def test_query_flow_control_window(client: Client, tenant: str, base_time: dt.datetime) -> None:
    client.ingest(make_events(tenant, 30, base_time))
    request = client.query_request(tenants=[tenant], order="oldest", page_size=10)
    call = client.open_call(Method.QUERY, request, streaming=True, initial_window=0)
    try:
        assert call.receive(timeout=0.3) is TIMEOUT  # no credit, no page
        call.grant(1)
        page = call.receive(timeout=10)
        assert isinstance(page, bytes) and len(pb.QueryResponse.FromString(page).events) == 10
        assert call.receive(timeout=0.3) is TIMEOUT
        call.grant(5)
        pages = []
        while (item := call.receive(timeout=10)) is not None:
            pages.append(item)
        assert len(pages) == 2 and call.metadata["vigil.exhausted"] == "true"
    finally:
        call.cancel()
    # The same through the API with the smallest window.
    assert len(list(client.query(tenants=[tenant], page_size=3, window=1))) == 30


def test_aggregate(client: Client, tenant: str, base_time: dt.datetime) -> None:
    client.ingest(make_events(tenant, 40, base_time))
    total = client.aggregate(tenants=[tenant])
    assert total.count == 40 and total.groups == []
    by_action = client.aggregate(tenants=[tenant], group_by="action", top=2)
    assert [(g.key, g.count) for g in by_action.groups] == [("auth.login", 10), ("invoice.approve", 10)]
    assert by_action.other_count == 20 and by_action.group_total == 4
    by_outcome = client.aggregate({"tenants": [tenant]}, group_by=pb.GroupBy.GROUP_BY_OUTCOME)
    assert {g.key: g.count for g in by_outcome.groups} == {"SUCCESS": 20, "FAILURE": 10, "DENIED": 10}
    histogram = client.aggregate(tenants=[tenant], histogram_interval="10s", since=base_time)
    assert sum(b.count for b in histogram.histogram) == 40
    assert all(b.start.timestamp() % 10 == 0 for b in histogram.histogram)
    failures = client.aggregate(tenants=[tenant], outcomes=["FAILURE"])
    assert failures.count == 10


def test_health(client: Client) -> None:
    health = client.health()
    assert health.status == pb.HealthResponse.SERVING
    assert list(health.reasons) == []


def test_get_and_not_found(client: Client, tenant: str, base_time: dt.datetime) -> None:
    client.ingest(make_events(tenant, 2, base_time))
    stored = list(client.query(tenants=[tenant]))
    event = client.get(stored[0].id)
    assert event == stored[0]
    with pytest.raises(NotFound) as missing:
        client.get("00000000-0000-7000-8000-000000000000")
    assert missing.value.code == 5 and missing.value.from_server
    with pytest.raises(InvalidArgument):
        client.get("not-a-uuid")


def test_invalid_batch_lists_every_bad_event(client: Client, tenant: str, base_time: dt.datetime) -> None:
    events = make_events(tenant, 5, base_time)
    del events[1]["action"]
    events[3]["metadata"] = {"bad key!": "x"}
    events[4]["sourceIp"] = "not-an-ip"
    with pytest.raises(InvalidArgument) as refused:
        client.ingest(events, idempotency_key=f"{tenant}-bad")
    errors = refused.value.event_errors
    assert sorted({e.index for e in errors}) == [1, 3, 4]
    assert any(e.index == 1 and e.field == "action" for e in errors)
    assert all(e.reason for e in errors)
    assert client.aggregate(tenants=[tenant]).count == 0  # nothing stored
    with pytest.raises(InvalidArgument) as filtered:
        list(client.query(tenants=[tenant], source_ips=["10.0.0.0/99"]))
    assert "sourceIps" in filtered.value.message


def test_idempotent_retry(client: Client, tenant: str, base_time: dt.datetime) -> None:
    events = make_events(tenant, 10, base_time)
    first = client.ingest(events, idempotency_key=f"{tenant}-k")
    again = client.ingest(events, idempotency_key=f"{tenant}-k")
    assert not first.replayed and again.replayed
    assert (again.first_seq, again.last_seq, again.count) == (first.first_seq, first.last_seq, first.count)
    client.reset()  # on a new connection too
    third = client.ingest(events, idempotency_key=f"{tenant}-k")
    assert third.replayed and third.first_seq == first.first_seq
    assert client.aggregate(tenants=[tenant]).count == 10


def test_pipelined_calls_from_threads(client: Client, tenant: str, base_time: dt.datetime) -> None:
    results, errors = [], []

    def work(worker: int) -> None:
        try:
            for n in range(10):
                start = worker * 100 + n * 5
                results.append(client.ingest(make_events(tenant, 5, base_time, start=start)))
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    seqs = [seq for r in results for seq in range(r.first_seq, r.last_seq + 1)]
    assert len(seqs) == len(set(seqs)) == 400
    assert client.aggregate(tenants=[tenant]).count == 400


def test_deadline_exceeded(client: Client, tenant: str) -> None:
    # A subscription to a tenant nobody writes to runs until its deadline.
    live = client.subscribe(tenants=[tenant], from_now=True, timeout=0.3, resume=False)
    with pytest.raises(DeadlineExceeded) as late:
        next(live)
    assert late.value.from_server and late.value.code == 4
    # The deadline counts from HEADERS: a request that never comes is cut too.
    call = client.connection().open_call(Method.GET, b"", timeout=0.2, send_request=False)
    with pytest.raises(DeadlineExceeded) as waiting:
        call.receive(timeout=10)
    assert waiting.value.from_server
    assert client.ping() >= 0  # the connection lives on


def test_oversized_frame_is_refused(client: Client, tenant: str, base_time: dt.datetime) -> None:
    limit = client.welcome.max_frame_size
    # The server refuses a MESSAGE over its limit from the header, and the connection lives on.
    connection = client.connection()
    call = connection.open_call(Method.INGEST, b"\x0a" + os.urandom(limit + 1024), enforce_frame_limit=False)
    with pytest.raises(ResourceExhausted) as refused:
        call.receive(timeout=30)
    assert refused.value.from_server
    assert client.connection() is connection and client.ping() >= 0

    # The client does not send what it knows is too large ...
    template = to_event(make_events(tenant, 1, base_time)[0])
    noise = []
    for _ in range(220):  # about 6.6 MB of random text: over 4 MiB even compressed
        event = pb.AuditEvent()
        event.CopyFrom(template)
        event.metadata.update({f"k{i}": base64.b64encode(os.urandom(750)).decode() for i in range(30)})
        noise.append(event)
    assert len(zlib.compress(pb.IngestRequest(events=noise).SerializeToString())) > limit
    with pytest.raises(ResourceExhausted) as local:
        client.ingest(noise)
    assert not local.value.from_server and "frame limit" in local.value.message
    # ... unless compressing makes it fit: then it goes as a COMPRESSED frame.
    repetitive = make_events(tenant, 250, base_time, metadata={f"k{i}": "x" * 800 for i in range(24)})
    assert pb.IngestRequest(events=to_events(repetitive)).ByteSize() > limit
    assert client.ingest(repetitive).count == 250
    assert client.aggregate(tenants=[tenant]).count == 250


def test_compressed_requests(server: ServerProcess, token: str, tenant: str, base_time: dt.datetime) -> None:
    with Client(server.address, token=token, compress_min_bytes=0) as compressing:
        assert compressing.ingest(make_events(tenant, 20, base_time)).count == 20
        assert len(list(compressing.query(tenants=[tenant]))) == 20


def test_unknown_method_is_unimplemented(client: Client) -> None:
    with pytest.raises(Unimplemented):
        client.unary("vigil.v1.Audit/NoSuchMethod", pb.GetRequest(), pb.GetResponse)


def test_wrong_token_is_unauthenticated(server: ServerProcess, client: Client) -> None:
    if client.welcome.principal == "anonymous":
        pytest.skip("this server runs without authentication")
    with pytest.raises(Unauthenticated):
        Client(server.address, token="vgl_wrong_token").connect()


def test_subscribe_catches_up_then_follows(client: Client, tenant: str, base_time: dt.datetime) -> None:
    client.ingest(make_events(tenant, 30, base_time))
    with client.subscribe(tenants=[tenant], since=base_time, window=8, timeout=60) as live:
        caught_up = [live.next_event(timeout=20) for _ in range(30)]
        assert None not in caught_up
        assert _ids(caught_up) == [f"r-{n:05d}" for n in range(30)]  # type: ignore[arg-type]
        client.ingest(make_events(tenant, 20, base_time, start=30))
        followed = [live.next_event(timeout=20) for _ in range(20)]
        assert _ids(followed) == [f"r-{n:05d}" for n in range(30, 50)]  # type: ignore[arg-type]
        seqs = [e.seq for e in caught_up + followed]  # type: ignore[union-attr]
        assert seqs == sorted(seqs) and len(set(seqs)) == 50
        cursor = live.cursor
    # A subscription from the cursor sees only what came after.
    client.ingest(make_events(tenant, 3, base_time, start=50))
    with client.subscribe(tenants=[tenant], cursor=cursor, timeout=60) as again:
        assert _ids([again.next_event(timeout=20) for _ in range(3)]) == ["r-00050", "r-00051", "r-00052"]  # type: ignore[arg-type]


def test_abandoned_and_closed_iterators_cancel_their_calls(client: Client, tenant: str, base_time: dt.datetime) -> None:
    client.ingest(make_events(tenant, 30, base_time))
    connection = client.connection()
    pages = client.query_pages(tenants=[tenant], page_size=5, window=1)
    assert len(next(pages)) == 5
    assert connection.open_calls == 1
    del pages  # dropped without close(): cancelled before the next call opens
    gc.collect()
    assert client.aggregate(tenants=[tenant]).count == 30
    assert connection.open_calls == 0
    with client.query(tenants=[tenant], page_size=5, window=1) as events:
        assert next(events).request_id == "r-00029"
    assert connection.open_calls == 0
    live = client.subscribe(tenants=[tenant], since=base_time)
    assert live.next_event(timeout=20) is not None
    live.close()
    assert connection.open_calls == 0 and live.next_event(timeout=0) is None


def test_heartbeats_carry_a_position(server_with: Any, token: str, tenant: str, base_time: dt.datetime) -> None:
    quick = server_with("--heartbeat-interval", "1")
    with Client(quick.address, token=token) as client:
        with client.subscribe(tenants=[tenant], from_now=True, window=1) as live:
            beats = [live.next_item(timeout=10) for _ in range(2)]  # more than the window: credit is granted back
            assert all(b is not None and b.is_heartbeat and b.heartbeat_at and b.cursor for b in beats)
            position = live.cursor
        client.ingest(make_events(tenant, 2, base_time))
        with client.subscribe(tenants=[tenant], cursor=position) as again:  # from the heartbeat's position
            assert _ids([again.next_event(timeout=10), again.next_event(timeout=10)]) == ["r-00000", "r-00001"]  # type: ignore[list-item]
