"""The committed generated code is current with Protos/ (run ./generate.sh after changing a .proto)."""

from __future__ import annotations

import filecmp
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
PROTOS = PACKAGE_ROOT.parent.parent / "Protos"
GENERATED = PACKAGE_ROOT / "vigil_client" / "_proto"


def _fingerprint() -> dict:
    lines = (GENERATED / "FINGERPRINT").read_text().splitlines()
    return {"protoc": lines[0].split()[-1], "files": dict(reversed(line.split("  ", 1)) for line in lines[1:])}


def test_fingerprint_matches_the_protos() -> None:
    """Works without protoc: the .proto files are the ones the code was generated from."""
    recorded = _fingerprint()["files"]
    current = {
        proto.relative_to(PROTOS).as_posix(): hashlib.sha256(proto.read_bytes()).hexdigest()
        for proto in sorted(PROTOS.glob("vigil/v1/*.proto"))
    }
    assert recorded == current, "Protos/ changed since the Python code was generated: run Clients/python/generate.sh"


def test_regenerating_changes_nothing(tmp_path: Path) -> None:
    protoc = shutil.which("protoc")
    if protoc is None:
        pytest.skip("protoc is not installed")
    version = subprocess.run([protoc, "--version"], capture_output=True, text=True, check=True).stdout.split()[-1]
    if version != _fingerprint()["protoc"]:
        pytest.skip(f"protoc {version} differs from the {_fingerprint()['protoc']} the code was generated with")
    subprocess.run(["sh", str(PACKAGE_ROOT / "generate.sh"), str(tmp_path)], check=True, capture_output=True)
    committed = sorted(p.relative_to(GENERATED) for p in GENERATED.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert committed == fresh
    _, mismatch, errors = filecmp.cmpfiles(GENERATED, tmp_path, [str(p) for p in fresh], shallow=False)
    assert not mismatch and not errors, f"stale generated files {mismatch}: run Clients/python/generate.sh"


def test_generated_modules_import() -> None:
    from vigil_client import pb

    assert pb.AuditEvent.DESCRIPTOR.full_name == "vigil.v1.AuditEvent"
    assert pb.Welcome.DESCRIPTOR.file.name == "vigil/v1/wire.proto"
