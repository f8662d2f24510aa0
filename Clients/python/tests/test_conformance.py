"""The conformance scenario, in process and through Clients/conformance/run.sh."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest
from conftest import REPO, ServerProcess

from vigil_client import conformance

RUN_SH = REPO / "Clients" / "conformance" / "run.sh"


def test_scenario_output(server: ServerProcess, token: str, capsys: pytest.CaptureFixture[str]) -> None:
    tenant = f"conf-{uuid.uuid4().hex[:8]}"
    args = ["--address", server.address, "--tenant", tenant, "--token", token]
    assert conformance.main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    steps = [json.loads(line) for line in lines]
    assert [s["step"] for s in steps] == [
        "ingest", "query-all", "query-resume", "failed-logins", "actor", "search", "time-range",
        "count-by-action", "get", "subscribe", "errors",
    ]
    for line, step in zip(lines, steps):
        assert line == json.dumps(step, sort_keys=True, separators=(",", ":"))
    by_name = {s["step"]: s for s in steps}
    assert by_name["ingest"] == {"step": "ingest", "stored": 240, "replayed": True, "seq_span": 239}
    every = [f"conf-{n:04d}" for n in range(1, 241)]
    assert by_name["query-all"]["request_ids"] == every and by_name["query-all"]["pages"] == 5
    assert by_name["query-resume"]["request_ids"] == every[::-1] and by_name["query-resume"]["calls"] == 5
    assert by_name["count-by-action"]["count"] == 240
    assert by_name["get"]["request_id"] == "conf-0042"
    assert by_name["subscribe"]["first"] == every[:100]
    assert by_name["subscribe"]["resumed"] == [f"conf-{n:04d}" for n in range(101, 261)]
    assert by_name["errors"] == {"step": "errors", "codes": [3, 3, 5, 3], "invalid_indexes": [0]}


def test_unreachable_server_exits_2() -> None:
    assert conformance.main(["--address", "127.0.0.1:1", "--tenant", "x"]) == 2


@pytest.mark.skipif(shutil.which("bash") is None, reason="run.sh needs bash")
def test_run_sh(server: ServerProcess) -> None:
    env = dict(os.environ, VIGIL_BIN=server.binary, PYTHON=sys.executable, VIGIL_CONFORMANCE_CLIENTS="python")
    done = subprocess.run(["bash", str(RUN_SH)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "OK:" in done.stderr and "python" in done.stderr
