#!/usr/bin/env bash
# Runs the conformance scenario (SCENARIO.md) with every client that is available,
# against one server, and checks that their outputs agree.
#
#   Clients/conformance/run.sh
#
# Environment:
#   VIGIL_BIN                 the server binary (default: .build/debug/vigil in the
#                             repository, else .build/release/vigil, else `vigil` on PATH)
#   VIGIL_SERVER_ARGS         extra flags for `vigil serve` (word-split), e.g. "--no-auth";
#                             when unset or empty the server gets `--admin-token-file` in the
#                             temporary directory and the clients its admin token
#   VIGIL_TOKEN               with VIGIL_SERVER_ARGS set: the API token the clients send
#                             (as --token and in their environment; default none)
#   VIGIL_C_CONFORMANCE       the C client's program (default: built by
#                             `make -C Clients/c conformance` when Clients/c has a Makefile)
#   VIGIL_SWIFT_CONFORMANCE   the Swift client's program (default: vigil-conformance in
#                             .build/debug, else .build/release, else in
#                             `swift build --show-bin-path`; built by
#                             `swift build --product vigil-conformance`)
#   PYTHON                    the Python interpreter (default python3)
#   VIGIL_CONFORMANCE_CLIENTS only these clients, e.g. "python" or "python c" (default: every
#                             client that is available)
#   KEEP=1                    keep the temporary directory (server log, outputs)
#
# Each client runs in its own tenant (conf-python, conf-c, conf-swift), one after
# another. Outputs are compared with the tenant replaced by TENANT: they must be
# identical, and step 1 must say "stored":240 and "replayed":true.
# Exit status: 0 all agree, 1 a client failed or the outputs differ, 2 setup failed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
python=${PYTHON:-python3}

say() { printf 'conformance: %s\n' "$*" >&2; }

# The server binary.
bin=${VIGIL_BIN:-}
if [[ -z $bin ]]; then
    if [[ -x $repo/.build/debug/vigil ]]; then
        bin=$repo/.build/debug/vigil
    elif [[ -x $repo/.build/release/vigil ]]; then
        bin=$repo/.build/release/vigil
    elif command -v vigil >/dev/null 2>&1; then
        bin=$(command -v vigil)
    else
        say "no server binary: build it (swift build) or set VIGIL_BIN"
        exit 2
    fi
fi
[[ -x $bin ]] || { say "VIGIL_BIN=$bin is not an executable"; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/vigil-conformance.XXXXXX")
server_pid=""
status=1
cleanup() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [[ ${KEEP:-0} == 1 || $status != 0 ]]; then
        say "kept $work (server.log, <client>.out, <client>.err)"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 2' INT TERM

# One server on a free port (port 0: the server picks one and logs it). By default
# it requires a token, and the clients send its admin token.
if [[ -n ${VIGIL_SERVER_ARGS:-} ]]; then
    read -r -a extra <<<"$VIGIL_SERVER_ARGS"
    token=${VIGIL_TOKEN:-}
else
    extra=(--admin-token-file "$work/admin-token")
    token=""
fi
# The log exists before the server starts: the background command opens it in
# its own process, and reading it first would fail (and end this script, set -e).
: >"$work/server.log"
"$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" --retention forever ${extra[@]+"${extra[@]}"} \
    >>"$work/server.log" 2>&1 &
server_pid=$!
address=""
for _ in $(seq 300); do  # up to 30 s
    if ! kill -0 "$server_pid" 2>/dev/null; then
        say "the server exited at startup:"; tail -n 20 "$work/server.log" >&2; status=2; exit 2
    fi
    address=$(sed -n 's/.*listening on \([^ ]*:[0-9][0-9]*\).*/\1/p' "$work/server.log" | head -n 1)
    [[ -n $address ]] && break
    sleep 0.1
done
[[ -n $address ]] || { say "the server did not start listening within 30 s"; tail -n 20 "$work/server.log" >&2; status=2; exit 2; }
if [[ -z ${VIGIL_SERVER_ARGS:-} ]]; then
    token=$(head -n 1 "$work/admin-token" 2>/dev/null || true)
    [[ -n $token ]] || { say "the server wrote no admin token to $work/admin-token"; status=2; exit 2; }
    say "server $bin on $address (clients authenticate with its admin token)"
else
    say "server $bin on $address (VIGIL_SERVER_ARGS=$VIGIL_SERVER_ARGS${token:+; clients send \$VIGIL_TOKEN})"
fi

token_args=()
if [[ -n $token ]]; then
    token_args=(--token "$token")
    export VIGIL_TOKEN=$token
else
    unset VIGIL_TOKEN
fi
# Every client reads the same events.
export VIGIL_CONFORMANCE_EVENTS=${VIGIL_CONFORMANCE_EVENTS:-$here/events.jsonl}

# The clients that are available (and wanted). A client runs for at most 5 minutes
# where `timeout` exists.
limit=()
command -v timeout >/dev/null 2>&1 && limit=(timeout 300)
wanted() { [[ -z ${VIGIL_CONFORMANCE_CLIENTS:-} || " ${VIGIL_CONFORMANCE_CLIENTS//,/ } " == *" $1 "* ]]; }
names=()
if ! wanted python; then
    :
elif "$python" -c 'import google.protobuf' 2>/dev/null; then
    names+=(python)
else
    say "python: skipped ($python cannot import google.protobuf: apt-get install python3-protobuf, or pip install protobuf; PYTHON picks the interpreter)"
fi
c_program=${VIGIL_C_CONFORMANCE:-}
wanted c || c_program=""
if wanted c && [[ -z $c_program && -f $repo/Clients/c/Makefile ]]; then
    if make -C "$repo/Clients/c" conformance >"$work/c-build.log" 2>&1; then
        for candidate in "$repo/Clients/c/conformance" "$repo/Clients/c/build/conformance" \
                         "$repo/Clients/c/vigil-conformance" "$repo/Clients/c/build/vigil-conformance"; do
            if [[ -f $candidate && -x $candidate ]]; then c_program=$candidate; break; fi
        done
        if [[ -z $c_program ]]; then
            say "c: \`make -C Clients/c conformance\` succeeded but no program was found (looked for Clients/c/[build/]conformance); set VIGIL_C_CONFORMANCE"
            exit 1
        fi
    else
        say "c: skipped (\`make -C Clients/c conformance\` failed; see $work/c-build.log)"
        tail -n 5 "$work/c-build.log" >&2 || true
    fi
fi
if [[ -n $c_program ]]; then
    [[ -x $c_program ]] || { say "VIGIL_C_CONFORMANCE=$c_program is not an executable"; exit 1; }
    names+=(c)
fi
swift_program=${VIGIL_SWIFT_CONFORMANCE:-}
wanted swift || swift_program=""
if wanted swift && [[ -z $swift_program ]]; then
    for candidate in "$repo/.build/debug/vigil-conformance" "$repo/.build/release/vigil-conformance"; do
        if [[ -f $candidate && -x $candidate ]]; then swift_program=$candidate; break; fi
    done
    if [[ -z $swift_program ]] && command -v swift >/dev/null 2>&1 \
        && bin_path=$(cd "$repo" && ${limit[@]+"${limit[@]}"} swift build --show-bin-path 2>/dev/null) \
        && [[ -f $bin_path/vigil-conformance && -x $bin_path/vigil-conformance ]]; then
        swift_program=$bin_path/vigil-conformance
    fi
    [[ -n $swift_program ]] || say "swift: skipped (no vigil-conformance: swift build --product vigil-conformance, or set VIGIL_SWIFT_CONFORMANCE)"
fi
if [[ -n $swift_program ]]; then
    [[ -x $swift_program ]] || { say "VIGIL_SWIFT_CONFORMANCE=$swift_program is not an executable"; exit 1; }
    say "swift: $swift_program"
    names+=(swift)
fi

# Runs one client with the scenario's flags (at most 5 minutes where `timeout` exists).
run_client() {
    local name=$1
    shift
    case $name in
        python) PYTHONPATH="$repo/Clients/python${PYTHONPATH:+:$PYTHONPATH}" ${limit[@]+"${limit[@]}"} "$python" -m vigil_client.conformance "$@" ;;
        c) ${limit[@]+"${limit[@]}"} "$c_program" "$@" ;;
        swift) ${limit[@]+"${limit[@]}"} "$swift_program" "$@" ;;
    esac
}
[[ ${#names[@]} -gt 0 ]] || { say "no client to run"; exit 2; }

# Run them one after another (step 1's seq_span needs nobody else ingesting).
failed=0
for name in "${names[@]}"; do
    tenant=conf-$name
    say "$name: running (tenant $tenant)"
    rc=0
    run_client "$name" --address "$address" --tenant "$tenant" ${token_args[@]+"${token_args[@]}"} \
        >"$work/$name.out" 2>"$work/$name.err" || rc=$?
    if [[ $rc != 0 ]]; then
        say "$name: exited with status $rc"; tail -n 20 "$work/$name.err" >&2
        failed=1
        continue
    fi
    sed "s/$tenant/TENANT/g" "$work/$name.out" >"$work/$name.normalized"
done
[[ $failed == 0 ]] || exit 1

# Check each output's shape and step 1, then compare every output with the first.
compare=0
"$python" - "$work" "${names[@]}" <<'PY' || compare=$?
import json, sys
work, names = sys.argv[1], sys.argv[2:]
steps = ["ingest", "query-all", "query-resume", "failed-logins", "actor", "search", "time-range",
         "count-by-action", "get", "subscribe", "errors"]
ok = True
outputs = {}
for name in names:
    lines = open(f"{work}/{name}.normalized", encoding="utf-8").read().splitlines()
    try:
        objects = [json.loads(line) for line in lines]
    except ValueError as error:
        print(f"conformance: {name}: a line is not JSON: {error}", file=sys.stderr); ok = False; continue
    got = [o.get("step") for o in objects]
    if got != steps:
        print(f"conformance: {name}: steps {got}, expected {steps}", file=sys.stderr); ok = False
    for line, obj in zip(lines, objects):
        canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"))
        if line != canonical:
            print(f"conformance: {name}: step {obj.get('step')} is not printed canonically "
                  f"(sorted keys, no spaces)", file=sys.stderr); ok = False
    first = objects[0] if objects else {}
    if first.get("stored") != 240 or first.get("replayed") is not True:
        print(f"conformance: {name}: step 1 says stored={json.dumps(first.get('stored'))} replayed={json.dumps(first.get('replayed'))}; "
              "expected stored=240 replayed=true", file=sys.stderr); ok = False
    outputs[name] = (lines, objects)

def describe(a, b, path):
    """Where two JSON values differ, briefly."""
    if type(a) is not type(b):
        return [f"{path}: {json.dumps(a)[:80]} vs {json.dumps(b)[:80]}"]
    if isinstance(a, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                out.append(f"{path}.{key}: only in {'second' if key not in a else 'first'}")
            elif a[key] != b[key]:
                out += describe(a[key], b[key], f"{path}.{key}")
        return out
    if isinstance(a, list):
        out = [f"{path}: {len(a)} vs {len(b)} entries"] if len(a) != len(b) else []
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                out.append(f"{path}[{i}] (first difference): {json.dumps(x)[:80]} vs {json.dumps(y)[:80]}")
                break
        return out
    return [f"{path}: {json.dumps(a)[:80]} vs {json.dumps(b)[:80]}"]

if len(outputs) == len(names) and names:
    reference = names[0]
    ref_lines, ref_objects = outputs[reference]
    for name in names[1:]:
        lines, objects = outputs[name]
        if lines == ref_lines:
            continue
        ok = False
        print(f"conformance: MISMATCH between {reference} and {name} (tenant replaced by TENANT):", file=sys.stderr)
        for i in range(max(len(ref_lines), len(lines))):
            a = ref_objects[i] if i < len(ref_objects) else None
            b = objects[i] if i < len(objects) else None
            if a == b and i < len(ref_lines) and i < len(lines) and ref_lines[i] == lines[i]:
                continue
            step = (a or b or {}).get("step", f"line {i + 1}")
            if a is None or b is None:
                print(f"  step {step}: missing in {reference if a is None else name}", file=sys.stderr)
                continue
            print(f"  step {step}:", file=sys.stderr)
            for difference in describe(a, b, "") or ["same values, different bytes (spacing or key order)"]:
                print(f"    {difference}", file=sys.stderr)
            print(f"    - {reference}: {ref_lines[i][:300]}", file=sys.stderr)
            print(f"    + {name}: {lines[i][:300]}", file=sys.stderr)
sys.exit(0 if ok else 1)
PY
if [[ $compare != 0 ]]; then exit 1; fi

if [[ ${#names[@]} == 1 ]]; then
    say "OK: ${names[0]} passed all 11 steps (the only client available: nothing to compare with)"
else
    say "OK: ${names[*]} agree on all 11 steps"
fi
status=0
