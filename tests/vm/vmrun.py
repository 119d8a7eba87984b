#!/usr/bin/python3
"""Boot a QEMU guest for one scenario of the offcopy guest rig (stdlib only).

    vmrun.py --cache DIR --scenario tests/vm/scenarios/NAME.sh --log OUT.log [--timeout S]

The scenario's header declares the topology with directive lines:

    # vm-nvme: ctrl=0 nsid=1 size=64M lbs=512 mssrl=128 mcl=128 msrc=127 [ms=8 mset=0 pi=1]
    # vm-lio: name=lun0 backstore=fileio size=64M [lbs=4096]
    # vm-lio: name=lun1 backstore=iblock dev=nvme0n1
    # vm-timeout: 120
    # vm-require: OFFCOPY_BIN      (skip without booting unless this env var names an existing path)

Exit status: 0 pass, 1 fail (including timeout), 77 skip (the scenario exited 77, or QEMU / the
kernel cache is missing and OFFCOPY_REQUIRE_VM is not 1).
"""

import argparse
import hashlib
import os
import resource
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.realpath(__file__))
EXIT_PASS, EXIT_FAIL, EXIT_SKIP = 0, 1, 77
DEFAULT_TIMEOUT = 300
# Speculation mitigations only cost time under emulation (syscalls ~1.5x faster without).
# no_timer_check: on a loaded host the emulated CPU is slow enough for the kernel's IO-APIC timer
# check to fail and panic at boot ("IO-APIC + timer doesn't work!"); seen with qboot firmware.
APPEND_EXTRA = " mitigations=off no_timer_check"
BEGIN_MARK = "=== vm: scenario begin ==="
END_MARK = "=== vm: scenario end"

# Keys of a vm-nvme directive the runner consumes; every other key is passed to -device nvme-ns
# unchanged (mssrl, mcl, msrc, ms, mset, pi, pil, ...).
NVME_RUNNER_KEYS = {"ctrl", "nsid", "size", "lbs"}
NVME_NS_KEYS = {"mssrl", "mcl", "msrc", "ms", "mset", "pi", "pil", "zoned", "eui64", "uuid"}
LIO_KEYS = {"name", "backstore", "size", "lbs", "dev"}


class DirectiveError(Exception):
    pass


def log(msg):
    print(f"vmrun: {msg}", file=sys.stderr, flush=True)


def parse_size(text):
    m = re.fullmatch(r"(\d+)([KMGT]?)(i?B?)", text.strip(), re.IGNORECASE)
    if not m:
        raise DirectiveError(f"bad size {text!r}")
    mult = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[m.group(2).upper()]
    return int(m.group(1)) * mult


def parse_kv(text, where):
    out = {}
    for tok in text.split():
        if "=" not in tok:
            raise DirectiveError(f"{where}: expected KEY=VALUE, got {tok!r}")
        k, v = tok.split("=", 1)
        if not re.fullmatch(r"[A-Za-z0-9_.:/-]+", v):
            raise DirectiveError(f"{where}: bad value {v!r} for {k}")
        out[k] = v
    return out


def parse_directives(path):
    """Returns (nvme list, lio list, timeout or None, required env vars) from the scenario's
    `# vm-*:` lines."""
    nvme, lio, timeout, require = [], [], None, []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            m = re.match(r"#\s*vm-([a-z]+):\s*(.*?)\s*$", line)
            if not m:
                continue
            where = f"{path}:{lineno}"
            kind, rest = m.group(1), m.group(2)
            if kind == "nvme":
                d = parse_kv(rest, where)
                for k in ("ctrl", "nsid", "size"):
                    if k not in d:
                        raise DirectiveError(f"{where}: vm-nvme needs {k}=")
                unknown = set(d) - NVME_RUNNER_KEYS - NVME_NS_KEYS
                if unknown:
                    raise DirectiveError(f"{where}: unknown vm-nvme keys {sorted(unknown)}")
                d["ctrl"], d["nsid"] = int(d["ctrl"]), int(d["nsid"])
                d["size_bytes"] = parse_size(d["size"])
                d["lbs"] = int(d.get("lbs", "512"))
                if d["size_bytes"] % d["lbs"]:
                    raise DirectiveError(f"{where}: size is not a multiple of lbs")
                if any(x["ctrl"] == d["ctrl"] and x["nsid"] == d["nsid"] for x in nvme):
                    raise DirectiveError(f"{where}: duplicate ctrl={d['ctrl']} nsid={d['nsid']}")
                nvme.append(d)
            elif kind == "lio":
                d = parse_kv(rest, where)
                unknown = set(d) - LIO_KEYS
                if unknown:
                    raise DirectiveError(f"{where}: unknown vm-lio keys {sorted(unknown)}")
                if not re.fullmatch(r"[a-z][a-z0-9_]*", d.get("name", "")):
                    raise DirectiveError(f"{where}: vm-lio needs name=[a-z][a-z0-9_]*")
                bs = d.get("backstore", "fileio")
                d["backstore"] = bs
                if bs == "fileio":
                    if "size" not in d:
                        raise DirectiveError(f"{where}: fileio needs size=")
                    d["size_bytes"] = parse_size(d["size"])
                elif bs == "iblock":
                    if not re.fullmatch(r"nvme\d+n\d+", d.get("dev", "")):
                        raise DirectiveError(f"{where}: iblock needs dev=nvmeCnN (a vm-nvme namespace)")
                else:
                    raise DirectiveError(f"{where}: backstore must be fileio or iblock")
                if any(x["name"] == d["name"] for x in lio):
                    raise DirectiveError(f"{where}: duplicate LUN name {d['name']}")
                lio.append(d)
            elif kind == "timeout":
                timeout = int(rest)
            elif kind == "require":
                require += rest.split()
            else:
                raise DirectiveError(f"{where}: unknown directive vm-{kind}")
    for d in lio:
        if d["backstore"] == "iblock":
            c, n = map(int, re.findall(r"\d+", d["dev"]))
            if not any(x["ctrl"] == c and x["nsid"] == n for x in nvme):
                raise DirectiveError(f"{path}: LUN {d['name']}: dev={d['dev']} is not declared")
    return nvme, lio, timeout, require


def lio_serial(index, name):
    # LIO derives the LU's NAA from the first hex digits of vpd_unit_serial: make the serials
    # differ right at the start (index), the rest from the name. Hex digits only.
    return f"{index + 1:02x}" + hashlib.sha256(name.encode()).hexdigest()[:30]


def keep_tmp_names(paths):
    """First components under /tmp of the host paths the guest must still see (its /tmp is a
    tmpfs): a checkout or build directory below /tmp."""
    names = set()
    for p in paths:
        if not p or not os.path.isabs(p):
            continue
        for q in {os.path.abspath(p), os.path.realpath(p)}:
            parts = q.split("/")
            if len(parts) > 2 and parts[1] == "tmp" and parts[2]:
                names.add(parts[2])
    bad = [n for n in names if not re.fullmatch(r"[A-Za-z0-9_.+-]+", n)]
    if bad:
        raise DirectiveError(f"cannot share paths below /tmp with unusual names: {bad}")
    return sorted(names)


class Terminated(Exception):
    pass


def _terminate(signum, _frame):
    # QEMU runs in its own session (so a kill reaches all its threads and helpers): turn SIGTERM
    # and SIGHUP (CTest's timeout, a closed terminal) into an exception that kills it.
    raise Terminated(f"signal {signum}")


def main():
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _terminate)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", required=True, help="directory prepared by tests/vm/setup.sh")
    ap.add_argument("--scenario", required=True)
    ap.add_argument("--log", required=True, help="where the guest console goes")
    ap.add_argument("--timeout", type=int, help="hard limit in seconds (default: vm-timeout or 300)")
    ap.add_argument("--quiet", action="store_true", help="do not copy the scenario's output to stdout")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (disk images)")
    ap.add_argument("--memory", default="2048")
    ap.add_argument("--smp", default="2")
    args = ap.parse_args()

    require = os.environ.get("OFFCOPY_REQUIRE_VM") == "1"

    def unavailable(reason):
        if require:
            log(f"FAIL: {reason} (OFFCOPY_REQUIRE_VM=1)")
            return EXIT_FAIL
        log(f"SKIP: {reason}")
        return EXIT_SKIP

    scenario = os.path.abspath(args.scenario)
    name = os.path.splitext(os.path.basename(scenario))[0]
    if not os.path.isfile(scenario):
        log(f"FAIL: no scenario {scenario}")
        return EXIT_FAIL
    try:
        nvme, lio, dir_timeout, require_env = parse_directives(scenario)
    except (DirectiveError, ValueError) as e:
        log(f"FAIL: {e}")
        return EXIT_FAIL
    timeout = args.timeout or dir_timeout or DEFAULT_TIMEOUT
    for var in require_env:
        value = os.environ.get(var)
        if not value:
            log(f"SKIP {name}: {var} is not set")
            return EXIT_SKIP
        if not os.path.exists(value):
            log(f"SKIP {name}: {var}={value} does not exist")
            return EXIT_SKIP

    qemu = shutil.which("qemu-system-x86_64")
    if not qemu:
        return unavailable("qemu-system-x86_64 not found (run tests/vm/setup.sh)")
    cache = os.path.abspath(args.cache)
    kernel, initrd = os.path.join(cache, "vmlinuz"), os.path.join(cache, "initrd.img")
    for f in (kernel, initrd):
        if not os.path.isfile(f):
            return unavailable(f"{f} missing (run tests/vm/setup.sh {cache})")

    offcopy_env = {k: v for k, v in os.environ.items() if k.startswith("OFFCOPY_")}
    workdir = os.getcwd()
    guest_script = os.path.join(HERE, "guest.sh")
    try:
        keep = keep_tmp_names([HERE, scenario, workdir] + list(offcopy_env.values()))
    except DirectiveError as e:
        log(f"FAIL: {e}")
        return EXIT_FAIL

    tmp = tempfile.mkdtemp(prefix=f"offcopy-vm-{name}-")
    share = os.path.join(tmp, "share")
    os.mkdir(share)
    os.chmod(share, 0o777)
    try:
        return run(args, qemu, kernel, initrd, scenario, name, nvme, lio, timeout, offcopy_env,
                   workdir, guest_script, keep, tmp, share)
    except Terminated as e:
        log(f"FAIL {name}: terminated by {e}")
        return EXIT_FAIL
    finally:
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run(args, qemu, kernel, initrd, scenario, name, nvme, lio, timeout, offcopy_env, workdir,
        guest_script, keep, tmp, share):
    with open(os.path.join(share, "boot.env"), "w") as f:
        f.write(f"GUEST_SCRIPT={shlex.quote(guest_script)}\n")
        f.write(f"KEEP_TMP={shlex.quote(' '.join(keep))}\n")
    with open(os.path.join(share, "job.env"), "w") as f:
        for k, v in sorted(offcopy_env.items()):
            f.write(f"export {k}={shlex.quote(v)}\n")
        f.write(f"export SCENARIO={shlex.quote(scenario)}\n")
        f.write(f"export WORKDIR={shlex.quote(workdir)}\n")
        f.write(f"export VM_SCENARIO_NAME={shlex.quote(name)}\n")
        f.write(f"export VM_LIB={shlex.quote(os.path.join(os.path.dirname(guest_script), 'lib.sh'))}\n")

    cmd = [qemu, "-nographic", "-no-reboot", "-m", args.memory, "-smp", args.smp,
           "-accel", "tcg,thread=multi", "-cpu", "max",
           "-kernel", kernel, "-initrd", initrd,
           "-append", "console=ttyS0 panic=-1 quiet" + APPEND_EXTRA,
           "-nic", "none",
           "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
           "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
           "-virtfs", f"local,path={share},mount_tag=vmshare,security_model=none,multidevs=remap"]

    topo = []
    for c in sorted({d["ctrl"] for d in nvme}):
        cmd += ["-device", f"nvme,id=nvme{c},serial=offcopy-c{c}"]
    for d in nvme:
        c, n = d["ctrl"], d["nsid"]
        img = os.path.join(tmp, f"nvme{c}n{n}.img")
        with open(img, "wb") as f:
            f.truncate(d["size_bytes"])
        drive = f"nvc{c}n{n}"
        cmd += ["-drive", f"file={img},if=none,id={drive},format=raw,cache=unsafe,aio=threads"]
        props = [f"drive={drive}", f"bus=nvme{c}", f"nsid={n}",
                 f"logical_block_size={d['lbs']}", f"physical_block_size={d['lbs']}"]
        props += [f"{k}={v}" for k, v in d.items() if k in NVME_NS_KEYS]
        cmd += ["-device", "nvme-ns," + ",".join(props)]
        topo.append(f"nvme var=NVME{c}N{n} serial=offcopy-c{c} nsid={n}")
    for i, d in enumerate(lio):
        line = (f"lio var={d['name'].upper()} name={d['name']} backstore={d['backstore']}"
                f" serial={lio_serial(i, d['name'])}")
        if d["backstore"] == "fileio":
            line += f" size={d['size_bytes']}"
        else:
            line += f" dev={d['dev'].upper()}"
        if "lbs" in d:
            line += f" lbs={int(d['lbs'])}"
        topo.append(line)
    with open(os.path.join(share, "topology"), "w") as f:
        f.write("\n".join(topo) + "\n")

    log_path = os.path.abspath(args.log)
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    logf = open(log_path, "w", encoding="utf-8", errors="replace")
    logf.write("# " + " ".join(shlex.quote(x) for x in cmd) + "\n")
    logf.flush()

    t0 = time.monotonic()
    rc_file = os.path.join(share, "rc")
    # A guest that dies before the scenario starts (a panic at boot on a starved host, a device
    # that did not show up in time) is the rig's fault, not the scenario's: boot once more.
    for attempt in (1, 2):
        qemu_rc, timed_out, marks = boot_once(cmd, logf, t0, t0 + timeout, args.quiet)
        if timed_out or "begin" in marks or attempt == 2:
            break
        remaining = t0 + timeout - time.monotonic()
        if remaining < timeout / 2:
            break
        logf.write(f"# vmrun: the guest ended before the scenario began (qemu exit {qemu_rc}); booting again\n")
        log(f"{name}: the guest ended before the scenario began (qemu exit {qemu_rc}); booting again")
        if os.path.exists(rc_file):
            os.unlink(rc_file)
        for d in nvme:  # untouched by the scenario, but start from zeros again
            with open(os.path.join(tmp, f"nvme{d['ctrl']}n{d['nsid']}.img"), "wb") as f:
                f.truncate(d["size_bytes"])
    elapsed = time.monotonic() - t0

    scenario_rc = None
    if os.path.exists(rc_file):
        try:
            scenario_rc = int(open(rc_file).read().strip())
        except ValueError:
            pass
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    timing = (f"boot {marks['begin']:.1f}s, scenario {marks.get('end', elapsed) - marks['begin']:.1f}s, "
              if "begin" in marks else "") + f"total {elapsed:.1f}s, qemu cpu {ru.ru_utime + ru.ru_stime:.1f}s"
    logf.write(f"# vmrun: qemu exit {qemu_rc}, scenario rc {scenario_rc}, {timing}\n")
    logf.close()

    if timed_out:
        result, why = EXIT_FAIL, f"timed out after {timeout}s"
    elif scenario_rc is not None:
        result = {0: EXIT_PASS, 77: EXIT_SKIP}.get(scenario_rc, EXIT_FAIL)
        why = f"scenario exit {scenario_rc}"
    else:
        # No result file: fall back on isa-debug-exit ((value << 1) | 1).
        result = {1: EXIT_PASS, 5: EXIT_SKIP}.get(qemu_rc, EXIT_FAIL)
        why = f"no result file, qemu exit {qemu_rc}"
    word = {EXIT_PASS: "PASS", EXIT_FAIL: "FAIL", EXIT_SKIP: "SKIP"}[result]
    log(f"{word} {name}: {why} ({timing}); console log {log_path}")
    if result == EXIT_FAIL:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            tail = f.readlines()[-40:]
        sys.stderr.write("---- last lines of the console ----\n" + "".join(tail))
    return result


def boot_once(cmd, logf, t0, deadline, quiet):
    """Runs QEMU until it exits or the deadline passes. Console lines go to logf (with host
    seconds since t0); the scenario's lines to stdout unless quiet.
    Returns (qemu exit status, timed out, {"chroot"|"begin"|"end": seconds})."""
    marks = {}
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)

    def pump():
        in_scenario = False
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").replace("\r", "").rstrip("\n")
            # Strip terminal control sequences the firmware/console emits.
            line = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1bc", "", line)
            now = time.monotonic() - t0
            logf.write(f"[{now:7.2f}] {line}\n")  # host seconds since the first boot
            logf.flush()
            if line.startswith("vm-init: chroot") and "chroot" not in marks:
                marks["chroot"] = now
            if line.startswith(END_MARK):
                in_scenario = False
                marks["end"] = now
            if in_scenario and not quiet:
                print(line, flush=True)
            if line.startswith(BEGIN_MARK):
                in_scenario = True
                marks["begin"] = now

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    try:
        qemu_rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        qemu_rc = proc.wait()
    except BaseException:  # KeyboardInterrupt, Terminated (CTest's timeout), ...
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    reader.join(timeout=5)
    return qemu_rc, timed_out, marks


if __name__ == "__main__":
    sys.exit(main())
