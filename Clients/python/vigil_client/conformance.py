"""The conformance scenario (``Clients/conformance/SCENARIO.md``) for the Python client.

    python3 -m vigil_client.conformance --address 127.0.0.1:7700 --tenant conf-python [--token TOKEN]

Prints one JSON object per step (keys sorted, no spaces) on stdout. Exit status:
0 done, 1 a step failed, 2 the server could not be reached.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .client import Client
from .errors import VigilConnectionError, VigilError

CALL_TIMEOUT = 30.0


def _emit(obj: Dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _default_events_path() -> Optional[Path]:
    env = os.environ.get("VIGIL_CONFORMANCE_EVENTS")
    if env:
        return Path(env)
    candidate = Path(__file__).resolve().parent.parent.parent / "conformance" / "events.jsonl"
    return candidate if candidate.exists() else None


def load_events(path: Path, tenant: str) -> List[Dict[str, Any]]:
    events = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                event = json.loads(line)
                if event.get("tenant") == "TENANT":
                    event["tenant"] = tenant
                events.append(event)
    return events


def _request_ids(events: Sequence[Any]) -> List[str]:
    return [event.request_id for event in events]


def run(client: Client, tenant: str, events: List[Dict[str, Any]]) -> None:
    t = [tenant]

    # 1. ingest: 100, 100, 40 with keys T-batch-0..2, then batch 0 again.
    batches = [events[0:100], events[100:200], events[200:240]]
    answers = [client.ingest(batch, idempotency_key=f"{tenant}-batch-{n}") for n, batch in enumerate(batches)]
    again = client.ingest(batches[0], idempotency_key=f"{tenant}-batch-0")
    _emit({
        "step": "ingest",
        "stored": sum(answer.count for answer in answers),
        "replayed": again.replayed,
        "seq_span": answers[2].last_seq - answers[0].first_seq,
    })

    # 2. query-all: oldest first, pages of 50, every page.
    pages = client.query_pages(tenants=t, order="oldest", page_size=50)
    all_events = [event for page in pages for event in page.events]
    ids = {event.request_id: event.id for event in all_events}
    _emit({"step": "query-all", "pages": pages.pages, "request_ids": _request_ids(all_events)})

    # 3. query-resume: newest first, limit 70, pages of 25; resume from the trailers' cursor.
    calls = 0
    resumed: List[str] = []
    cursor: Optional[str] = None
    while True:
        call = client.query_pages(tenants=t, order="newest", limit=70, page_size=25, cursor=cursor)
        got = [event for page in call for event in page.events]
        calls += 1
        resumed += _request_ids(got)
        if not got:
            break
        cursor = call.metadata.get("vigil.cursor")
        if not cursor:
            raise RuntimeError("a query call that returned events has no vigil.cursor in its trailers")
    _emit({"step": "query-resume", "calls": calls, "request_ids": resumed})

    # 4-7. filtered queries.
    _emit({"step": "failed-logins", "request_ids": _request_ids(list(
        client.query(tenants=t, actions=["auth.login"], outcomes=["FAILURE"], order="newest")))})
    _emit({"step": "actor", "request_ids": _request_ids(list(
        client.query(tenants=t, actor_ids=["u-7"], order="newest")))})
    _emit({"step": "search", "request_ids": _request_ids(list(
        client.query(tenants=t, search="acme", order="newest")))})
    _emit({"step": "time-range", "request_ids": _request_ids(list(
        client.query(tenants=t, since="2026-11-18T12:00:00Z", until="2026-11-18T13:00:00Z", order="oldest")))})

    # 8. count-by-action.
    counted = client.aggregate(tenants=t, group_by="action", top=100)
    _emit({"step": "count-by-action", "count": counted.count, "groups": [[g.key, g.count] for g in counted.groups]})

    # 9. get conf-0042 by the id step 2 returned.
    event = client.get(ids["conf-0042"])
    _emit({"step": "get", "request_id": event.request_id, "action": event.action})

    # 10. subscribe since a time, 100 events; ingest 20 more; resume from the 100th's cursor for 160.
    first: List[str] = []
    kept: Optional[str] = None
    with client.subscribe(tenants=t, since="2026-11-18T00:00:00Z", resume=False, timeout=CALL_TIMEOUT) as live:
        for item in live:
            first.append(item.request_id)
            if len(first) == 100:
                kept = live.cursor
                break
    client.ingest(events[240:260], idempotency_key=f"{tenant}-batch-3")
    second: List[str] = []
    with client.subscribe(tenants=t, cursor=kept, resume=False, timeout=CALL_TIMEOUT) as live:
        for item in live:
            second.append(item.request_id)
            if len(second) == 160:
                break
    _emit({"step": "subscribe", "first": first, "resumed": second})

    # 11. errors.
    codes: List[int] = []
    invalid_indexes: List[int] = []

    def expect_failure(action: Any) -> VigilError:
        try:
            action()
        except VigilError as error:
            codes.append(int(error.code))
            return error
        raise RuntimeError("a call that must fail succeeded")

    expect_failure(lambda: list(client.query_pages(tenants=t, page_size=20000)))
    expect_failure(lambda: client.get("not-a-uuid"))
    expect_failure(lambda: client.get("00000000-0000-7000-8000-000000000000"))
    bad = copy.deepcopy(events[0])
    del bad["action"]
    error = expect_failure(lambda: client.ingest([bad]))
    invalid_indexes = sorted({e.index for e in error.event_errors})
    _emit({"step": "errors", "codes": codes, "invalid_indexes": invalid_indexes})


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m vigil_client.conformance", description=__doc__.split("\n")[0])
    parser.add_argument("--address", required=True, help="HOST:PORT of the server")
    parser.add_argument("--tenant", required=True, help="the tenant replacing TENANT in the events")
    parser.add_argument("--token", default=os.environ.get("VIGIL_TOKEN", ""), help="API token (default $VIGIL_TOKEN)")
    parser.add_argument("--events", type=Path, default=None, help="events.jsonl (default: Clients/conformance/events.jsonl)")
    args = parser.parse_args(argv)

    path = args.events or _default_events_path()
    if path is None or not path.exists():
        print("conformance: events.jsonl not found; pass --events PATH", file=sys.stderr)
        return 1
    events = load_events(path, args.tenant)
    if len(events) < 260:
        print(f"conformance: {path} holds {len(events)} events, the scenario needs 260", file=sys.stderr)
        return 1

    client = Client(args.address, token=args.token, timeout=CALL_TIMEOUT, client_name="vigil-python-conformance")
    try:
        client.connect()
    except VigilConnectionError as error:
        print(f"conformance: cannot connect: {error}", file=sys.stderr)
        return 2
    except VigilError as error:
        print(f"conformance: the server refused the connection: {error}", file=sys.stderr)
        return 2
    try:
        run(client, args.tenant, events)
    except (VigilError, RuntimeError, KeyError) as error:
        print(f"conformance: failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
