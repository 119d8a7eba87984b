#!/usr/bin/env bash
# bench/nvme_xns_bench.sh [BUILD_DIR] — cross-namespace NVMe Copy benchmarks (issue 9 item 8):
# runs bench/nvme_xns_guest_bench.sh in the QEMU 10 guest (tests/vm) and prints its RESULT lines
# and the ratios docs/benchmarks.md quotes (medians of OFFCOPY_BENCH_RUNS runs, default 3):
#   256 MiB namespace → namespace: dd O_DIRECT / offload-copy offloaded and our fallback / offloaded
#   (wall), guest CPU of each;
#   4,096 x 4 KiB gathered from two namespaces: nvme-cli io-passthru (32 calls) / offload-copy (1 run, --source).
# OFFCOPY_BENCH_PARTS=copy256,gather selects parts. Emulated devices on TCG: ratios only.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "${1:-${OFFCOPY_BUILD:-$repo/build}}" && pwd)
export OFFCOPY_BIN=${OFFCOPY_BIN:-$build/offload-copy}
[[ -x $OFFCOPY_BIN ]] || { echo "no offload-copy at $OFFCOPY_BIN (build first)" >&2; exit 77; }
cache=${OFFCOPY_VM_CACHE:-$build/vm-cache}
"$repo/tests/vm/setup.sh" "$cache" >/dev/null
log=${OFFCOPY_BENCH_LOG:-$build/vm-logs/bench_nvme_xns.log}
mkdir -p "$(dirname "$log")"
echo "host load before: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 "$repo/tests/vm/vmrun.py" --cache "$cache" --scenario "$repo/bench/nvme_xns_guest_bench.sh" \
    --log "$log" --timeout 1500 >/dev/null
echo "host load after: $(cut -d' ' -f1-3 /proc/loadavg)"
grep -ao 'RESULT .*' "$log" | tr -d '\r' | sort -u | /usr/bin/python3 -c '
import statistics, sys
r = {}
for line in sys.stdin:
    f = line.split()
    r[f[1]] = {k: float(v) for k, v in (x.split("=") for x in f[2:])}
    print(line.rstrip())
def med(prefix, key):
    v = [x[key] for n, x in r.items() if n.startswith(prefix) and key in x]
    return statistics.median(v) if v else None
o, d, fb = med("copy256_offload_r", "wall"), med("copy256_dd_r", "wall"), med("copy256_fallback_r", "wall")
if o:
    oc, dc, fc = med("copy256_offload_r", "cpu"), med("copy256_dd_r", "cpu"), med("copy256_fallback_r", "cpu")
    st = r.get("startup_probe", {})
    print("RATIO copy256 wall: dd/offload=%.2f fallback/offload=%.2f dd/fallback=%.2f; guest CPU: offload %.3fs, "
          "dd %.3fs, fallback %.3fs (offload/dd=%.3f, offload/fallback=%.3f); medians: offload %.2fs, dd %.2fs, "
          "fallback %.2fs; probe alone %.2fs wall %.3fs CPU; offloaded in %d commands" % (
              d / o, fb / o, d / fb, oc, dc, fc, oc / dc, oc / fc, o, d, fb, st.get("wall", 0), st.get("cpu", 0),
              r.get("copy256_offload_report", {}).get("commands", 0)))
g, n = med("gather_offcopy_r", "wall"), med("gather_nvme_r", "wall")
if g and n:
    gc, nc = med("gather_offcopy_r", "cpu"), med("gather_nvme_r", "cpu")
    print("RATIO gather wall: nvme-cli/offcopy=%.2f; guest CPU: nvme-cli/offcopy=%.2f (offcopy %.2fs %.3fs CPU in "
          "%d commands, 1 run; nvme-cli io-passthru %.2fs %.3fs CPU in 32 calls)" % (
              n / g, nc / gc, g, gc, r.get("gather_offcopy_commands", {}).get("n", 0), n, nc))
'
