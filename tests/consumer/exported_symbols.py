#!/usr/bin/python3
"""The public boundary of liboffcopy.so: `nm -D --defined-only` must show the versioned C++ API
(offcopy::v0::...) and the C API (offcopy_...), and nothing else: no offcopy::detail, no backend
namespace (offcopy::nvme, offcopy::...::scsi), no anonymous namespace, no instantiation of the
standard library, fmt or nlohmann, no unversioned offcopy:: name.

Usage: exported_symbols.py LIBRARY    (exit 0 pass, 1 fail; prints the count)
"""

import re
import subprocess
import sys

# Symbols that must be there: the job API, the device, a plain function, and the C API.
REQUIRED = [
    "offcopy::v0::run(offcopy::v0::job const&)",
    "offcopy::v0::device::open(",
    "offcopy::v0::classify(offcopy::v0::status const&, unsigned long)",
    "offcopy::v0::version()",
    "offcopy_job_run",
    "offcopy_job_set_path",
    "offcopy_result_json",
    "offcopy_version",
]
FORBIDDEN = re.compile(r"detail|\(anonymous namespace\)|offcopy::(nvme|scsi|cli|testing)|nlohmann|fmt::")
# Anything not starting with offcopy::v0:: or offcopy_ fails too (template instantiations of std::, ...).


def nm(library, demangle):
    args = ["nm", "-D", "--defined-only"] + (["-C"] if demangle else []) + [library]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    names = []
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3:
            names.append((parts[1], parts[2]))
    return names


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    symbols = nm(sys.argv[1], demangle=True)
    bad = []
    exported = []
    for kind, name in symbols:
        if kind == "A":  # the symbol version node (OFFCOPY_0)
            if not re.fullmatch(r"OFFCOPY_\d+", name):
                bad.append(f"unexpected version node {name}")
            continue
        name = re.sub(r"@@?OFFCOPY_\d+$", "", name)
        exported.append(name)
        if FORBIDDEN.search(name) or not (name.startswith("offcopy::v0::") or name.startswith("offcopy_")):
            bad.append(name)
    missing = [r for r in REQUIRED if not any(n.startswith(r) for n in exported)]
    print(f"{len(exported)} exported symbols in {sys.argv[1]}")
    for name in sorted(exported):
        print(f"  {name}")
    if bad:
        print(f"FAIL: {len(bad)} symbols outside the public boundary:", *bad, sep="\n  ")
    if missing:
        print("FAIL: public symbols missing:", *missing, sep="\n  ")
    versioned = [n for k, n in nm(sys.argv[1], demangle=False) if k != "A" and "@@OFFCOPY_" not in n]
    if versioned:
        print("FAIL: symbols without the OFFCOPY_ version:", *versioned, sep="\n  ")
    return 1 if bad or missing or versioned else 0


if __name__ == "__main__":
    sys.exit(main())
