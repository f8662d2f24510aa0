#!/usr/bin/env bash
# Every test of the project, as CI runs it (the README's test command):
#   1. the Swift suite (`swift test`, in two processes: the CLI tests and the
#      rest), which also runs the conformance scenario with the Swift, Python and
#      C clients against one authenticated server;
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
swift build --build-tests
# Two test processes side by side. The CLI tests wait on child processes with
# blocking calls, which hold threads of Swift's cooperative pool (one per core);
# in one process with the async tests, two of them at once stall every async test
# for minutes on a 2-core machine. Each process has its own pool.
# The library and server tests run at most 8 at a time. Started all at once
# (about 120 stores, 1,800 threads), every async step of every test waited
# behind the others' jobs on the 2 cooperative threads: a 300 ms connect
# timeout ended after 44-62 s. The whole run takes as long either way. A test's
# time limit counts from when it gets its turn.
logs=$(mktemp -d)
SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH=8 swift test --skip-build --skip VigilCLITests >"$logs/swift-test.log" 2>&1 &
library_tests=$!
cli_status=0
swift test --skip-build --filter VigilCLITests >"$logs/swift-test-cli.log" 2>&1 || cli_status=$?
library_status=0
wait "$library_tests" || library_status=$?
cat "$logs/swift-test.log" "$logs/swift-test-cli.log"
rm -rf "$logs"
if ((library_status != 0 || cli_status != 0)); then
  echo "swift test failed: library and server tests exit $library_status, CLI tests exit $cli_status" >&2
  exit 1
fi

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
