#!/usr/bin/python3
"""Boot a QEMU guest for one scenario, or several in one boot, of the offcopy guest rig (stdlib only).

    vmrun.py --cache DIR --scenario tests/vm/scenarios/NAME.sh --log OUT.log [--timeout S]
    vmrun.py --cache DIR --name GROUP --scenario A.sh --scenario B.sh ... --log OUT.log

A scenario's header declares the topology with directive lines:

    # vm-nvme: ctrl=0 nsid=1 size=64M lbs=512 mssrl=128 mcl=128 msrc=127 [ms=8 mset=0 pi=1]
    # vm-lio: name=lun0 backstore=fileio size=64M [lbs=4096] [paths=2]
    # vm-lio: name=lun1 backstore=iblock dev=nvme0n1
    # vm-timeout: 120
    # vm-require: OFFCOPY_BIN      (skip without booting unless this env var names an existing path)
    # vm-group: NAME               (CMake: run with the other scenarios of group NAME in one boot)
    # vm-boots: N                  (run the scenario in N boots sharing the disk images: power cuts)

Several scenarios: the guest gets the union of their topologies (a device declared by more than
one must be declared identically), runs them one after another in the given order, and between
two scenarios gives every device back its boot state (zeroes, no partitions, nothing mounted).
Each scenario is reported PASS/FAIL/SKIP by name.

A scenario with `vm-boots: N` (2-4) boots alone, N times, on the same disk images: boot k runs it
with VM_BOOT=k and VM_BOOTS=N. A boot before the last must end in a power cut: the scenario prints
the console line `=== vm: power cut ===` and the runner kills QEMU with SIGKILL at once (the
guest's memory, page cache and in-flight requests are lost; the images keep what reached them).
The last boot's exit status is the scenario's.

Exit status: 0 pass (every scenario passed), 1 fail (one or more failed or did not run, including
a timeout), 77 skip (none failed but one or more skipped: the scenario exited 77 or its vm-require
is unmet, or QEMU / the kernel cache is missing and OFFCOPY_REQUIRE_VM is not 1).
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
# The guest prints "=== vm: scenario begin NAME ===" and "=== vm: scenario end NAME rc=N at Ts ===".
BEGIN_MARK = "=== vm: scenario begin"
END_MARK = "=== vm: scenario end"
# A scenario of several boots asks for a power cut with this console line (vm-boots).
POWER_CUT_MARK = "=== vm: power cut ==="
MAX_BOOTS = 4

# Keys of a vm-nvme directive the runner consumes; every other key is passed to -device nvme-ns
# unchanged (mssrl, mcl, msrc, ms, mset, pi, pil, ...).
NVME_RUNNER_KEYS = {"ctrl", "nsid", "size", "lbs", "read_error_lba", "write_error_lba"}
NVME_NS_KEYS = {"mssrl", "mcl", "msrc", "ms", "mset", "pi", "pil", "pif", "zoned", "eui64", "uuid"}
LIO_KEYS = {"name", "backstore", "size", "lbs", "dev", "paths"}


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
    """Returns (nvme list, lio list, timeout or None, required env vars, group or None) from the
    scenario's `# vm-*:` lines."""
    nvme, lio, timeout, require, group = [], [], None, [], None
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
                for k in ("read_error_lba", "write_error_lba"):
                    if k in d and not re.fullmatch(r"\d+(:\d+)*", d[k]):
                        raise DirectiveError(f"{where}: {k} takes LBAs separated by ':'")
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
                if d.get("paths", "1") not in ("1", "2"):
                    raise DirectiveError(f"{where}: paths must be 1 or 2")
                if any(x["name"] == d["name"] for x in lio):
                    raise DirectiveError(f"{where}: duplicate LUN name {d['name']}")
                lio.append(d)
            elif kind == "timeout":
                timeout = int(rest)
            elif kind == "require":
                require += rest.split()
            elif kind == "group":
                if not re.fullmatch(r"[a-z][a-z0-9_]*", rest):
                    raise DirectiveError(f"{where}: vm-group needs a name [a-z][a-z0-9_]*")
                group = rest
            elif kind == "boots":
                parse_boots_value(rest, where)  # read by parse_boots()
            else:
                raise DirectiveError(f"{where}: unknown directive vm-{kind}")
    for d in lio:
        if d["backstore"] == "iblock":
            c, n = map(int, re.findall(r"\d+", d["dev"]))
            if not any(x["ctrl"] == c and x["nsid"] == n for x in nvme):
                raise DirectiveError(f"{path}: LUN {d['name']}: dev={d['dev']} is not declared")
    return nvme, lio, timeout, require, group


def parse_boots_value(text, where):
    if not re.fullmatch(r"\d+", text) or not 1 <= int(text) <= MAX_BOOTS:
        raise DirectiveError(f"{where}: vm-boots takes 1 to {MAX_BOOTS}")
    return int(text)


def parse_boots(path):
    """The scenario's `# vm-boots: N` (1 without one)."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            m = re.match(r"#\s*vm-boots:\s*(.*?)\s*$", line)
            if m:
                return parse_boots_value(m.group(1), f"{path}:{lineno}")
    return 1


def merge_topologies(parts):
    """The union of several scenarios' (path, nvme, lio) declarations, in first-seen order. A
    namespace (ctrl, nsid) or a LUN name declared by more than one scenario must be declared with
    the same keys and values: a group never changes what a scenario asked for."""
    nvme, lio, seen_ns, seen_lun = [], [], {}, {}
    for path, ns_list, lun_list in parts:
        for d in ns_list:
            key = (d["ctrl"], d["nsid"])
            if key in seen_ns:
                first, other = seen_ns[key]
                if other != d:
                    raise DirectiveError(f"{path}: ctrl={key[0]} nsid={key[1]} differs from its "
                                         f"declaration in {first}")
                continue
            seen_ns[key] = (path, d)
            nvme.append(d)
        for d in lun_list:
            if d["name"] in seen_lun:
                first, other = seen_lun[d["name"]]
                if other != d:
                    raise DirectiveError(f"{path}: LUN {d['name']} differs from its declaration in {first}")
                continue
            seen_lun[d["name"]] = (path, d)
            lio.append(d)
    return nvme, lio


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
    ap.add_argument("--scenario", required=True, action="append",
                    help="scenario script; repeat to run several in one boot, in this order")
    ap.add_argument("--name", help="name of the run (default: the scenario's; a group's name)")
    ap.add_argument("--log", required=True, help="where the guest console goes")
    ap.add_argument("--timeout", type=int,
                    help="hard limit in seconds (default: the sum of the scenarios' vm-timeout, 300 each)")
    ap.add_argument("--quiet", action="store_true", help="do not copy the scenarios' output to stdout")
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

    scenarios, skipped, parts = [], [], []
    for path in args.scenario:
        path = os.path.abspath(path)
        sname = os.path.splitext(os.path.basename(path))[0]
        if not os.path.isfile(path):
            log(f"FAIL: no scenario {path}")
            return EXIT_FAIL
        if any(x["name"] == sname for x in scenarios) or sname in skipped:
            log(f"FAIL: scenario {sname} given twice")
            return EXIT_FAIL
        try:
            nvme, lio, dir_timeout, require_env, _group = parse_directives(path)
        except (DirectiveError, ValueError) as e:
            log(f"FAIL: {e}")
            return EXIT_FAIL
        unmet = None
        for var in require_env:
            value = os.environ.get(var)
            if not value:
                unmet = f"{var} is not set"
            elif not os.path.exists(value):
                unmet = f"{var}={value} does not exist"
            if unmet:
                break
        if unmet:
            log(f"SKIP {sname}: {unmet}")
            skipped.append(sname)
            continue
        try:
            boots = parse_boots(path)
        except DirectiveError as e:
            log(f"FAIL: {e}")
            return EXIT_FAIL
        if boots > 1 and (len(args.scenario) > 1 or _group):
            log(f"FAIL: {sname}: a scenario of {boots} boots (vm-boots) boots alone, never in a group")
            return EXIT_FAIL
        scenarios.append({"name": sname, "path": path, "timeout": dir_timeout or DEFAULT_TIMEOUT, "boots": boots})
        parts.append((path, nvme, lio))
    name = args.name or (scenarios[0]["name"] if len(args.scenario) == 1 and scenarios else
                         os.path.splitext(os.path.basename(args.scenario[0]))[0])
    if not scenarios:
        return EXIT_SKIP
    try:
        nvme, lio = merge_topologies(parts)
    except DirectiveError as e:
        log(f"FAIL: {e}")
        return EXIT_FAIL
    timeout = args.timeout or sum(x["timeout"] for x in scenarios)

    qemu = shutil.which("qemu-system-x86_64")
    if not qemu:
        return unavailable("qemu-system-x86_64 not found (run tests/vm/setup.sh)")
    cache = os.path.abspath(args.cache)
    # vmlinux (setup.sh: uncompressed, with the PVH entry note) boots without the bzImage's
    # decompression under emulation; vmlinuz where the kernel has no such note.
    kernel, initrd = os.path.join(cache, "vmlinux"), os.path.join(cache, "initrd.img")
    if not os.path.isfile(kernel):
        kernel = os.path.join(cache, "vmlinuz")
    for f in (kernel, initrd):
        if not os.path.isfile(f):
            return unavailable(f"{f} missing (run tests/vm/setup.sh {cache})")

    offcopy_env = {k: v for k, v in os.environ.items() if k.startswith("OFFCOPY_")}
    workdir = os.getcwd()
    guest_script = os.path.join(HERE, "guest.sh")
    try:
        keep = keep_tmp_names([HERE, workdir] + [x["path"] for x in scenarios] + list(offcopy_env.values()))
    except DirectiveError as e:
        log(f"FAIL: {e}")
        return EXIT_FAIL

    tmp = tempfile.mkdtemp(prefix=f"offcopy-vm-{name}-")
    share = os.path.join(tmp, "share")
    os.mkdir(share)
    os.chmod(share, 0o777)
    try:
        result = run(args, qemu, kernel, initrd, name, scenarios, nvme, lio, timeout, offcopy_env,
                     workdir, guest_script, keep, tmp, share)
    except Terminated as e:
        log(f"FAIL {name}: terminated by {e}")
        return EXIT_FAIL
    finally:
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if skipped and result == EXIT_PASS:
        log(f"SKIP {name}: the others passed, but not run: {' '.join(skipped)}")
        return EXIT_SKIP
    return result


def write_share(share, guest_script, keep, offcopy_env, workdir, scenarios, nvme, lio, boot=1, boots=1):
    """The files the guest reads: boot.env (init.sh), job.env, scenarios, topology (guest.sh)."""
    with open(os.path.join(share, "boot.env"), "w") as f:
        f.write(f"GUEST_SCRIPT={shlex.quote(guest_script)}\n")
        f.write(f"KEEP_TMP={shlex.quote(' '.join(keep))}\n")
    with open(os.path.join(share, "job.env"), "w") as f:
        for k, v in sorted(offcopy_env.items()):
            f.write(f"export {k}={shlex.quote(v)}\n")
        f.write(f"export WORKDIR={shlex.quote(workdir)}\n")
        f.write(f"export VM_LIB={shlex.quote(os.path.join(os.path.dirname(guest_script), 'lib.sh'))}\n")
        f.write(f"export VM_BOOT={boot} VM_BOOTS={boots}\n")
    with open(os.path.join(share, "scenarios"), "w") as f:
        # NAME TIMEOUT PATH: names are file names, paths may hold spaces (last field).
        for x in scenarios:
            f.write(f"{x['name']} {x['timeout']} {x['path']}\n")
    topo = []
    for d in nvme:
        c, n = d["ctrl"], d["nsid"]
        meta = int(d.get("ms", "0")) > 0 or d.get("pi", "0") not in ("0", "")
        topo.append(f"nvme var=NVME{c}N{n} serial=offcopy-c{c} nsid={n}" + (" metadata=1" if meta else ""))
    for i, d in enumerate(lio):
        line = (f"lio var={d['name'].upper()} name={d['name']} backstore={d['backstore']}"
                f" serial={lio_serial(i, d['name'])}")
        if d["backstore"] == "fileio":
            line += f" size={d['size_bytes']}"
        else:
            line += f" dev={d['dev'].upper()}"
        if "lbs" in d:
            line += f" lbs={int(d['lbs'])}"
        if d.get("paths", "1") == "2":
            line += " paths=2"
        topo.append(line)
    with open(os.path.join(share, "topology"), "w") as f:
        f.write("\n".join(topo) + "\n")


def blkdebug_rules(d):
    """QEMU blkdebug rules for a namespace's injected media errors: every read (write) of the
    first 512-byte sector of each listed LBA fails with EIO, for as long as the guest runs. The raw
    format driver announces each request as a read_aio / write_aio event; iotype keeps a read rule
    from also failing writes of that sector and the other way round."""
    out = []
    for key, event, iotype in (("read_error_lba", "read_aio", "read"), ("write_error_lba", "write_aio", "write")):
        for lba in d.get(key, "").split(":") if key in d else []:
            sector = int(lba) * d["lbs"] // 512
            out.append(f'[inject-error]\nevent = "{event}"\niotype = "{iotype}"\nerrno = "5"\n'
                       f'sector = "{sector}"\nonce = "off"\nimmediately = "off"\n')
    return "\n".join(out)


def create_images(tmp, nvme):
    for d in nvme:
        with open(os.path.join(tmp, f"nvme{d['ctrl']}n{d['nsid']}.img"), "wb") as f:
            f.truncate(0)
            f.truncate(d["size_bytes"])


def read_results(share):
    """{name: exit status} from the guest's SHARE/results ("NAME RC" lines)."""
    out = {}
    try:
        with open(os.path.join(share, "results")) as f:
            for line in f:
                w = line.split()
                if len(w) == 2 and w[1].lstrip("-").isdigit():
                    out[w[0]] = int(w[1])
    except OSError:
        pass
    return out


def run(args, qemu, kernel, initrd, name, scenarios, nvme, lio, timeout, offcopy_env, workdir,
        guest_script, keep, tmp, share):
    write_share(share, guest_script, keep, offcopy_env, workdir, scenarios, nvme, lio)

    cmd = [qemu, "-nographic", "-no-reboot", "-m", args.memory, "-smp", args.smp,
           "-accel", "tcg,thread=multi", "-cpu", "max",
           "-kernel", kernel, "-initrd", initrd,
           "-append", "console=ttyS0 panic=-1 quiet" + APPEND_EXTRA,
           "-nic", "none",
           "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
           "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
           "-virtfs", f"local,path={share},mount_tag=vmshare,security_model=none,multidevs=remap"]
    for c in sorted({d["ctrl"] for d in nvme}):
        cmd += ["-device", f"nvme,id=nvme{c},serial=offcopy-c{c}"]
    create_images(tmp, nvme)
    for d in nvme:
        c, n = d["ctrl"], d["nsid"]
        img = os.path.join(tmp, f"nvme{c}n{n}.img")
        drive = f"nvc{c}n{n}"
        rules = blkdebug_rules(d)
        if rules:
            conf = os.path.join(tmp, f"nvme{c}n{n}.blkdebug")
            with open(conf, "w") as f:
                f.write(rules)
            img = f"blkdebug:{conf}:{img}"
        cmd += ["-drive", f"file={img},if=none,id={drive},format=raw,cache=unsafe,aio=threads"]
        props = [f"drive={drive}", f"bus=nvme{c}", f"nsid={n}",
                 f"logical_block_size={d['lbs']}", f"physical_block_size={d['lbs']}"]
        props += [f"{k}={v}" for k, v in d.items() if k in NVME_NS_KEYS]
        cmd += ["-device", "nvme-ns," + ",".join(props)]

    log_path = os.path.abspath(args.log)
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    logf = open(log_path, "w", encoding="utf-8", errors="replace")
    logf.write("# " + " ".join(shlex.quote(x) for x in cmd) + "\n")
    logf.write("# scenarios: " + " ".join(x["name"] for x in scenarios) + "\n")
    logf.flush()

    t0 = time.monotonic()
    rc_file = os.path.join(share, "rc")
    boots = scenarios[0].get("boots", 1) if len(scenarios) == 1 else 1
    cut_failure = None
    for boot in range(1, boots + 1):
        if boots > 1:
            write_share(share, guest_script, keep, offcopy_env, workdir, scenarios, nvme, lio, boot, boots)
            for f in ("rc", "results"):
                if os.path.exists(os.path.join(share, f)):
                    os.unlink(os.path.join(share, f))
            logf.write(f"# vmrun: boot {boot} of {boots}\n")
            logf.flush()
        # A guest that dies before the first scenario starts (a panic at boot on a starved host, a
        # device that did not show up in time) is the rig's fault, not the scenario's: boot once more.
        for attempt in (1, 2):
            qemu_rc, timed_out, marks = boot_once(cmd, logf, t0, t0 + timeout, args.quiet, len(scenarios) > 1,
                                                  power_cut=boot < boots)
            if timed_out or marks["begin"] or attempt == 2:
                break
            remaining = t0 + timeout - time.monotonic()
            if remaining < timeout / 2:
                break
            logf.write(f"# vmrun: the guest ended before the scenario began (qemu exit {qemu_rc}); booting again\n")
            log(f"{name}: the guest ended before the scenario began (qemu exit {qemu_rc}); booting again")
            for f in ("rc", "results"):
                if os.path.exists(os.path.join(share, f)):
                    os.unlink(os.path.join(share, f))
            if boot == 1:
                create_images(tmp, nvme)  # untouched by the scenarios, but start from zeros again
        if boot < boots:
            if timed_out:
                break
            if "cut" not in marks:
                rc = read_results(share).get(scenarios[0]["name"])
                cut_failure = f"boot {boot} of {boots} ended without a power cut (scenario exit {rc}, qemu exit {qemu_rc})"
                break
            logf.write(f"# vmrun: power cut in boot {boot} at {marks['cut']:.1f}s\n")
            log(f"{name}: power cut in boot {boot} of {boots} ({marks['cut']:.1f}s)")
    elapsed = time.monotonic() - t0

    overall_rc = None
    if os.path.exists(rc_file):
        try:
            overall_rc = int(open(rc_file).read().strip())
        except ValueError:
            pass
    results = read_results(share)
    if len(scenarios) == 1 and scenarios[0]["name"] not in results and overall_rc is not None:
        results[scenarios[0]["name"]] = overall_rc  # a setup failure (125) before the scenario
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    first = min(marks["begin"].values()) if marks["begin"] else None
    last = max(marks["end"].values()) if marks["end"] else elapsed
    timing = (f"boot {first:.1f}s, scenarios {last - first:.1f}s, " if first is not None else "") + \
        f"total {elapsed:.1f}s, qemu cpu {ru.ru_utime + ru.ru_stime:.1f}s"
    logf.write(f"# vmrun: qemu exit {qemu_rc}, rc {overall_rc}, results {results}, {timing}\n")
    logf.close()

    words = {EXIT_PASS: "PASS", EXIT_FAIL: "FAIL", EXIT_SKIP: "SKIP"}
    per = []
    for x in scenarios:
        n = x["name"]
        rc = results.get(n)
        if cut_failure:
            res, why = EXIT_FAIL, cut_failure
        elif rc is not None:
            res = {0: EXIT_PASS, 77: EXIT_SKIP}.get(rc, EXIT_FAIL)
            why = {124: "timed out in the guest", 125: "device setup failed"}.get(rc, f"exit {rc}")
        elif len(scenarios) == 1 and not timed_out and qemu_rc in (1, 5):
            # No result file: fall back on isa-debug-exit ((value << 1) | 1).
            res, why = {1: EXIT_PASS, 5: EXIT_SKIP}[qemu_rc], f"no result file, qemu exit {qemu_rc}"
        elif n in marks["begin"]:
            res, why = EXIT_FAIL, ("timed out" if timed_out else f"did not finish (qemu exit {qemu_rc})")
        else:
            res, why = EXIT_FAIL, ("did not run: " +
                                   (f"timed out after {timeout}s" if timed_out else f"qemu exit {qemu_rc}"))
        if n in marks["begin"]:
            why += f", {marks['end'].get(n, elapsed) - marks['begin'][n]:.1f}s"
        per.append((n, res, why))
    if timed_out:
        overall = EXIT_FAIL
    elif any(r == EXIT_FAIL for _, r, _ in per):
        overall = EXIT_FAIL
    elif any(r == EXIT_SKIP for _, r, _ in per):
        overall = EXIT_SKIP
    else:
        overall = EXIT_PASS
    if len(scenarios) == 1:
        n, r, why = per[0]
        if timed_out:
            why = f"timed out after {timeout}s"
        log(f"{words[overall]} {name}: {why} ({timing}); console log {log_path}")
    else:
        for n, r, why in per:
            log(f"  {words[r]} {n}: {why}")
        failed = [n for n, r, _ in per if r == EXIT_FAIL]
        skipped = [n for n, r, _ in per if r == EXIT_SKIP]
        detail = (f"failed: {' '.join(failed)}" if failed else f"skipped: {' '.join(skipped)}" if skipped
                  else f"{len(per)} scenarios passed")
        if timed_out:
            detail = f"timed out after {timeout}s; " + detail
        log(f"{words[overall]} {name}: {detail} ({timing}); console log {log_path}")
    if overall == EXIT_FAIL:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            tail = f.readlines()[-40:]
        sys.stderr.write("---- last lines of the console ----\n" + "".join(tail))
    return overall


def boot_once(cmd, logf, t0, deadline, quiet, several, power_cut=False):
    """Runs QEMU until it exits or the deadline passes. Console lines go to logf (with host
    seconds since t0); the scenarios' lines to stdout unless quiet (with a header line per
    scenario when `several`). With `power_cut`, the console line POWER_CUT_MARK kills QEMU at once
    (SIGKILL: nothing in the guest's memory reaches the images) and marks["cut"] is its time.
    Returns (qemu exit status, timed out, {"chroot": s, "begin": {name: s}, "end": {name: s}})."""
    marks = {"begin": {}, "end": {}}
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)

    def pump():
        in_scenario = False
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").replace("\r", "").rstrip("\n")
            # Strip terminal control sequences the firmware/console emits.
            line = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1bc", "", line)
            now = time.monotonic() - t0
            if power_cut and line.strip() == POWER_CUT_MARK and "cut" not in marks:
                marks["cut"] = now
                os.killpg(proc.pid, signal.SIGKILL)
            logf.write(f"[{now:7.2f}] {line}\n")  # host seconds since the first boot
            logf.flush()
            if line.startswith("vm-init: chroot") and "chroot" not in marks:
                marks["chroot"] = now
            m = re.match(re.escape(END_MARK) + r" (\S+) rc=", line)
            if m:
                in_scenario = False
                marks["end"][m.group(1)] = now
            if in_scenario and not quiet:
                print(line, flush=True)
            m = re.match(re.escape(BEGIN_MARK) + r" (\S+) ===", line)
            if m:
                in_scenario = True
                marks["begin"][m.group(1)] = now
                if several and not quiet:
                    print(f"=== {m.group(1)} ===", flush=True)

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
