#!/usr/bin/env bash
# Every test of the project, as CI runs it (the README's test command):
#   1. the Swift suite (`swift test`), which also runs the conformance scenario
#      with the Swift, Python and C clients against one authenticated server;
#   2. the C client's tests, plain and under AddressSanitizer/UBSan;
#   3. the Python client's tests;
#   4. a short fuzzing pass (20 s per target; Tests/Fuzz/run.sh says how to run longer).
# The client tests run against a server that requires a token: an admin token
# made here, given to the server with --admin-token-file and to the clients as
# $VIGIL_TOKEN.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
step() { printf '\n==> %s\n' "$*"; }

step "swift test"
swift build
swift test

vigil=$root/.build/debug/vigil
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$vigil" token generate >"$work/admin-token"
chmod 600 "$work/admin-token"
export VIGIL_TOKEN
VIGIL_TOKEN=$(cat "$work/admin-token")

step "C client: make test asan"
VIGIL_TEST_SERVER_ARGS="--admin-token-file $work/admin-token" make -C Clients/c VIGIL="$vigil" test asan

step "Python client: pytest"
(cd Clients/python && VIGIL_BIN="$vigil" VIGIL_SERVER_ARGS="--admin-token-file $work/admin-token" python3 -m pytest -q)

step "fuzzing: 20 s per target"
VIGIL_FUZZ_SCRATCH=$root/.build Tests/Fuzz/run.sh all 20

step "all tests passed"
