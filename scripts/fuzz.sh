#!/usr/bin/env bash
# Fuzzing for real (issue 8.10): builds the libFuzzer targets of tests/fuzz (preset fuzz: Debian's
# clang with -fsanitize=fuzzer, ASan and UBSan) and runs each for a time budget, starting from the
# committed corpus (tests/fuzz/corpus/<target>, read only) and writing what it finds to
# build-fuzz/work/<target>. Prints the executions and crashes of every target; exits 1 when any
# target crashed (the inputs are in build-fuzz/artifacts/<target>/).
#
#   scripts/fuzz.sh [-t SECONDS] [-j JOBS] [--merge] [TARGET...]
#
#   -t SECONDS  budget per target (default $OFFCOPY_FUZZ_SECONDS or 60)
#   -j JOBS     parallel fuzzing jobs per target (default 1)
#   --merge     afterwards, add the findings that reach new edges to tests/fuzz/corpus/<target>
#               (-merge=1), to be committed
#   TARGET      nvme_parsers scsi_parsers scsi_vpd8f extents planner (default: all in tests/fuzz)
#
# CI does not run this: it replays the committed corpora in every build (ctest -L fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${OFFCOPY_FUZZ_SECONDS:-60}
jobs=1
merge=0
targets=()
while (($#)); do
  case "$1" in
    -t) seconds=$2; shift 2 ;;
    -j) jobs=$2; shift 2 ;;
    --merge) merge=1; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if ((${#targets[@]} == 0)); then
  for f in tests/fuzz/*.cpp; do
    n=$(basename "$f" .cpp)
    [[ $n == replay_main ]] || targets+=("$n")
  done
fi

if ! command -v clang++ >/dev/null; then
  echo "fuzz.sh: clang++ not found (scripts/install-deps.sh installs clang and libclang-rt-dev)" >&2
  exit 2
fi

cmake --preset fuzz >/dev/null
build_targets=()
for t in "${targets[@]}"; do build_targets+=("fuzz_$t"); done
cmake --build --preset fuzz -j"$(nproc)" --target "${build_targets[@]}"

bin=build-fuzz/tests
status=0
results=()
for t in "${targets[@]}"; do
  work=build-fuzz/work/$t
  artifacts=build-fuzz/artifacts/$t
  seeds=tests/fuzz/corpus/$t
  mkdir -p "$work" "$artifacts" "$seeds"
  log=build-fuzz/work/$t.log
  echo "fuzz.sh: $t for ${seconds} s ..."
  # -jobs (even -jobs=1) runs the fuzzer in child processes logging to ./fuzz-N.log: only for > 1.
  parallel=()
  ((jobs > 1)) && parallel=(-jobs="$jobs" -workers="$jobs")
  set +e
  "$bin/fuzz_$t" -max_total_time="$seconds" -print_final_stats=1 "${parallel[@]}" \
    -artifact_prefix="$artifacts/" -close_fd_mask=1 "$work" "$seeds" >"$log" 2>&1
  rc=$?
  set -e
  # With -jobs > 1 each job logs to fuzz-N.log in the current directory: fold them in.
  if ((jobs > 1)); then
    cat fuzz-*.log >>"$log" 2>/dev/null || true
    rm -f fuzz-*.log
  fi
  execs=$(grep -ho 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{s += $2} END {print s + 0}')
  crashes=$(find "$artifacts" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
  corpus=$(find "$work" "$seeds" -type f | wc -l)
  if ((rc != 0 && crashes == 0)); then crashes=1; fi  # died without an artifact: count it
  ((crashes == 0)) || status=1
  results+=("$(printf '%-14s %8s s %12s execs %10s execs/s %7s inputs %5s crashes' "$t" "$seconds" "$execs" \
    "$((execs / (seconds > 0 ? seconds : 1)))" "$corpus" "$crashes")")
  if ((merge)); then
    # The committed seeds stay (hand-made, named after what they hold); a finding is added only
    # when it reaches an edge they do not (-use_counters=0: edges, not hit counts, keeps it small).
    before=$(find "$seeds" -type f | wc -l)
    "$bin/fuzz_$t" -merge=1 -use_counters=0 -close_fd_mask=1 "$seeds" "$work" >>"$log" 2>&1
    echo "fuzz.sh: $t corpus: $before -> $(find "$seeds" -type f | wc -l) files, $(cat "$seeds"/* | wc -c) bytes"
  fi
done

echo
printf '%s\n' "${results[@]}"
exit "$status"
