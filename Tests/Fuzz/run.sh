#!/usr/bin/env bash
# libFuzzer targets for the code that reads untrusted bytes (see README, "Fuzzing").
#
#   Tests/Fuzz/run.sh TARGET [SECONDS] [LIBFUZZER_FLAG...]   fuzz one target (default 60 s)
#   Tests/Fuzz/run.sh all [SECONDS] [LIBFUZZER_FLAG...]      each target in turn (CI: all 20)
#   Tests/Fuzz/run.sh repro TARGET FILE...                   run inputs once (a crash, a regression)
#   Tests/Fuzz/run.sh build                                  only build
#
# TARGET is frame (frame decoder, COMPRESSED payloads), event (protobuf →
# EventValidator, filters, cursors) or part (PartReader, column decoders).
#
# Builds `vigil-fuzz` with -sanitize=fuzzer,address in its own scratch path
# (.build-fuzz; VIGIL_FUZZ=1 makes Package.swift declare the target), so the
# normal build is untouched. Per target, the corpus grows in
# .build-fuzz/fuzz/corpus/TARGET, seeded by seeds the binary writes with the
# project's own encoders and by Tests/Fuzz/regressions/TARGET. A crash leaves
# its input in .build-fuzz/fuzz/artifacts/TARGET/ and makes the script exit 1.
#
# A longer run, e.g. an hour per target on two cores:
#   Tests/Fuzz/run.sh part 3600 -jobs=2 -workers=2
#
# VIGIL_FUZZ_SCRATCH=.build reuses the dependencies a `swift build`/`swift test`
# already compiled there (CI, after its tests: the build takes about a minute
# instead of several, swift-crypto's C code being most of a clean build); the
# next normal build then recompiles Vigil's own modules once.
set -euo pipefail

cd "$(dirname "$0")/../.."
root=$PWD
scratch=${VIGIL_FUZZ_SCRATCH:-.build-fuzz}
[[ $scratch == /* ]] || scratch=$root/$scratch
work=$scratch/fuzz
targets=(frame event part)
build_flags=(--scratch-path "$scratch" -c debug)

# The Swift backtracer would catch the crash before libFuzzer writes the input.
export SWIFT_BACKTRACE=enable=no
# Swift's caches and globals read as leaks at exit; leaks are not what this looks for.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=0}

usage() {
  sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

build() {
  mkdir -p "$work"
  local started=$SECONDS
  echo "fuzz: building vigil-fuzz (log: $work/build.log)"
  if ! VIGIL_FUZZ=1 swift build "${build_flags[@]}" --product vigil-fuzz >"$work/build.log" 2>&1; then
    # The linker warns about every ASan symbol it cannot export; show the rest.
    grep -v "Cannot export local symbol" "$work/build.log" | tail -40
    echo "fuzz: build failed" >&2
    exit 1
  fi
  binary=$(VIGIL_FUZZ=1 swift build "${build_flags[@]}" --show-bin-path)/vigil-fuzz
  echo "fuzz: built in $((SECONDS - started)) s"
  rm -rf "$work/seeds"
  VIGIL_FUZZ_SEEDS="$work/seeds" "$binary" >/dev/null
}

is_target() {
  local name
  for name in "${targets[@]}"; do [[ $1 == "$name" ]] && return 0; done
  return 1
}

# fuzz TARGET SECONDS [FLAG...]: 0 when nothing crashed.
fuzz() {
  local target=$1 seconds=$2
  shift 2
  local corpus=$work/corpus/$target artifacts=$work/artifacts/$target
  local regressions=$root/Tests/Fuzz/regressions/$target
  local log=$work/$target.log
  mkdir -p "$corpus" "$artifacts" "$work/logs"
  local inputs=("$corpus" "$work/seeds/$target")
  [[ -d $regressions ]] && inputs+=("$regressions")
  echo "fuzz: $target for $seconds s (log: $log)"
  local status=0
  # -jobs writes fuzz-N.log files into the working directory.
  (cd "$work/logs" && VIGIL_FUZZ_TARGET=$target "$binary" \
    -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -artifact_prefix="$artifacts/" -print_final_stats=1 "$@" "${inputs[@]}") >"$log" 2>&1 || status=$?
  local stats
  stats=$(grep -E "^#[0-9]+.*(DONE|pulse|NEW|REDUCE|INITED)" "$log" | tail -1 || true)
  echo "fuzz: $target: ${stats:-no progress line}"
  grep -E "^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)" "$log" | tr '\n' ' ' || true
  echo
  if ((status != 0)); then
    echo "fuzz: $target FAILED (exit $status); the end of its log:" >&2
    grep -v "^#[0-9]" "$log" | tail -40 >&2
    ls "$artifacts" >&2 || true
    return 1
  fi
}

command=${1:-}
[[ -z $command ]] && usage
case $command in
  build)
    build
    ;;
  repro)
    [[ $# -ge 3 ]] && is_target "$2" || usage
    target=$2
    shift 2
    build
    VIGIL_FUZZ_TARGET=$target "$binary" -runs=1 "$@"
    ;;
  all)
    seconds=${2:-20}
    shift $(($# >= 2 ? 2 : 1))
    started=$SECONDS
    build
    failed=()
    for target in "${targets[@]}"; do
      fuzz "$target" "$seconds" "$@" || failed+=("$target")
    done
    echo "fuzz: all targets done in $((SECONDS - started)) s"
    if ((${#failed[@]} > 0)); then
      echo "fuzz: crashes in: ${failed[*]} (inputs under $work/artifacts/)" >&2
      exit 1
    fi
    ;;
  *)
    is_target "$command" || usage
    seconds=${2:-60}
    shift $(($# >= 2 ? 2 : 1))
    build
    fuzz "$command" "$seconds" "$@" || exit 1
    ;;
esac
