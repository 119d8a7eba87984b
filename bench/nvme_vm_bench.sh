#!/usr/bin/env bash
# bench/nvme_vm_bench.sh [BUILD_DIR] — runs bench/nvme_guest_bench.sh in the QEMU guest (tests/vm)
# and prints its RESULT lines plus the ratios issue 4 asks for:
#   256 MiB copy: dd time / offload time (target >= 2), offload CPU / fallback CPU (target <= 5 %);
#   4,096 x 64 KiB gather: per-extent nvme-cli loop time / offcopy time (target >= 20; the loop is
#   timed on a sample of OFFCOPY_BENCH_LOOP_EXTENTS calls and scaled), and the same against nvme-cli
#   with 128 ranges per call;
#   1-range commands: async x16 rate / sync rate (target >= 2), async rate / fio io_uring_cmd
#   iodepth=16 IOPS (target >= 0.8).
# OFFCOPY_BENCH_PARTS=copy256,gather,rate selects parts. Emulated devices on TCG: ratios only.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "${1:-${OFFCOPY_BUILD:-$repo/build}}" && pwd)
export OFFCOPY_BIN=${OFFCOPY_BIN:-$build/offload-copy}
[[ -x $OFFCOPY_BIN ]] || { echo "no offload-copy at $OFFCOPY_BIN (build first)" >&2; exit 77; }
cache=${OFFCOPY_VM_CACHE:-$build/vm-cache}
"$repo/tests/vm/setup.sh" "$cache" >/dev/null
log=${OFFCOPY_BENCH_LOG:-$build/vm-logs/bench_nvme.log}
mkdir -p "$(dirname "$log")"
/usr/bin/python3 "$repo/tests/vm/vmrun.py" --cache "$cache" --scenario "$repo/bench/nvme_guest_bench.sh" \
    --log "$log" --timeout 1500 >/dev/null
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
o, fb, dd = med("copy256_offload_r", "wall"), med("copy256_fallback_r", "wall"), med("copy256_dd_r", "wall")
if o:
    oc, fc, dc = med("copy256_offload_r", "cpu"), med("copy256_fallback_r", "cpu"), med("copy256_dd_r", "cpu")
    oe, fe = med("copy256_offload_engine", "elapsed"), med("copy256_fallback_engine", "elapsed")
    st = r.get("startup_probe", {})
    print("RATIO copy256 process: dd/offload=%.2f fallback/offload=%.2f offload_cpu/fallback_cpu=%.3f "
          "(medians: offload %.2fs cpu %.2fs; fallback %.2fs cpu %.2fs; dd %.2fs cpu %.2fs; "
          "probe alone %.2fs cpu %.2fs)" % (dd / o, fb / o, oc / fc, o, oc, fb, fc, dd, dc,
                                              st.get("wall", 0), st.get("cpu", 0)))
    print("RATIO copy256 engine time: dd/offload=%.2f fallback/offload=%.2f (offload %.2fs, fallback %.2fs)"
          % (dd / oe, fe / oe, oe, fe))
io, ifb = med("copy256_inproc_offload", "cpu"), med("copy256_inproc_fallback", "cpu")
if io is not None and ifb:
    print("RATIO copy256 in-process (no start-up): offload_cpu/fallback_cpu=%.3f dd/offload=%.2f "
          "(offload %.2fs cpu %.3fs; fallback %.2fs cpu %.3fs)" % (
              io / ifb, (dd or 0) / med("copy256_inproc_offload", "wall"), med("copy256_inproc_offload", "wall"), io,
              med("copy256_inproc_fallback", "wall"), ifb))
g = r.get("gather_offcopy")
loop = next(((n, x) for n, x in r.items() if n.startswith("gather_nvme_loop_sample_")), None)
if g and loop and "gather_nvme_max" in r:
    sample = int(loop[0].rsplit("_", 1)[1])
    loop_4096 = loop[1]["wall"] * 4096 / sample
    n = r.get("gather_offcopy_commands", {}).get("n", 0)
    print("RATIO gather loop/offcopy=%.0f nvme_max/offcopy=%.1f (offcopy %.2fs in %d commands; nvme-cli with "
          "128 ranges/call %.1fs in 32 calls; nvme-cli per extent %.1fs for %d calls, scaled to 4096: %.0fs)" % (
              loop_4096 / g["wall"], r["gather_nvme_max"]["wall"] / g["wall"], g["wall"], n,
              r["gather_nvme_max"]["wall"], loop[1]["wall"], sample, loop_4096))
if "rate_sync" in r and "rate_async" in r:
    s = r["rate_sync"]["commands"] / r["rate_sync"]["elapsed"]
    a = r["rate_async"]["commands"] / r["rate_async"]["elapsed"]
    fio = r.get("rate_fio", {}).get("iops", 0)
    print("RATIO rate async/sync=%.2f async/fio=%.2f (sync %.0f/s, async x16 %.0f/s, fio io_uring_cmd x16 reads %.0f/s)"
          % (a / s, a / fio if fio else 0, s, a, fio))
'
