#!/usr/bin/env python3
"""Writes events.jsonl: the conformance scenario's fixed events (deterministic).

Every event's `requestId` ("conf-0001" …) is its stable name: clients compare
results by it, since seqs and server-assigned ids differ between runs. The
tenant is the placeholder "TENANT"; each client replaces it with its own.
Run: python3 make_events.py > events.jsonl
"""
import json
import random

rng = random.Random(20261203)
actions = [
    ("auth.login", "LOGIN", "session"), ("auth.logout", "LOGOUT", "session"),
    ("user.create", "CREATE", "user"), ("user.update", "UPDATE", "user"),
    ("user.delete", "DELETE", "user"), ("invoice.create", "CREATE", "invoice"),
    ("invoice.approve", "APPROVE", "invoice"), ("pod.restart", "EXECUTE", "pod"),
    ("acl.update", "UPDATE", "acl"), ("credential.token_refresh", "UPDATE", "credential"),
]
base = 1_795_000_000  # 2026-11-18T11:06:40Z, in seconds
for n in range(1, 261):
    action, category, rtype = actions[rng.randrange(len(actions))]
    actor = f"u-{rng.randrange(1, 12)}"
    outcome = "SUCCESS"
    if action == "auth.login" and rng.random() < 0.4:
        outcome = "FAILURE"
    elif rng.random() < 0.05:
        outcome = "DENIED"
    seconds = base + n * 60 + rng.randrange(0, 30)
    event = {
        "occurredAt": f"{seconds}",  # replaced below
        "tenant": "TENANT",
        "actor": {"id": actor, "type": "USER", "name": f"User {actor[2:]}",
                  "email": f"{actor}@example.test"},
        "action": action, "category": category,
        "resource": {"type": rtype, "id": f"{rtype}-{rng.randrange(1, 40)}",
                     "name": f"{rtype} number {rng.randrange(1, 40)}"},
        "outcome": outcome,
        "sourceIp": rng.choice(["203.0.113.9", "198.51.100.20", "2001:db8::7", "192.0.2.44"]),
        "userAgent": "conformance/1.0",
        "traceId": f"{rng.getrandbits(128):032x}",
        "requestId": f"conf-{n:04d}",
        "metadata": {"region": rng.choice(["eu-west", "us-east"])},
        "description": f"{actor} did {action}" + (" on invoice for ACME" if rtype == "invoice" else ""),
    }
    import datetime
    event["occurredAt"] = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(json.dumps(event, separators=(",", ":")))
