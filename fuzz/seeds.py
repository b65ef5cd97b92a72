#!/usr/bin/env python3
"""Writes seed inputs into fuzz/corpus/<target>/ (file name: SHA-1 of the
content, as libFuzzer names its own).

Real kernel buffers come from conformance results: every `RAW` line of
every row's guest output in the given `--json` files (all architectures,
under their own layout for cmsg_parse; the x86_64 rows' buffers for
cmsg_differential, which walks the native layout). Hand-made edge cases are
added for every target.

    cargo run -p msgzc-conformance -- run --all --json target/conformance/all.json
    fuzz/seeds.py target/conformance/all.json

With `--buffers FILE`, the buffers that system-tier rows (a real kernel of
the target's own architecture, or a 64-bit one through its compat layer)
received are also written to FILE, one representative per target and
shape (direction, message list, item kinds, truncation, completion count),
for the regression test in conformance/src/judge/kernel_buffers.rs:

    ci/system --all
    fuzz/seeds.py --buffers conformance/facts/kernel-buffers.txt \
        target/conformance/system-all.json
"""
import hashlib
import json
import os
import struct
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def arch_order():
    """Arch::ALL order, which the targets index with their first byte."""
    out = subprocess.run(
        ["cargo", "run", "-q", "-p", "msgzc-conformance", "--", "abi-table", "--json"],
        cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return [json.loads(line)["target"] for line in out.splitlines() if line.strip()]


def write(target, data):
    d = os.path.join(ROOT, "fuzz", "corpus", target)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, hashlib.sha1(data).hexdigest())
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(data)
        return 1
    return 0


def raw_lines(paths):
    """(row, RAW line, its fields) of every RAW line in the results."""
    for p in paths:
        with open(p) as f:
            doc = json.load(f)
        for row in doc["rows"]:
            for line in row["guest_output"]:
                if not line.startswith("RAW "):
                    continue
                fields = dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
                yield row, line, fields


def is_system(row):
    return row["tier"].startswith("system")


def write_buffers(path, paths):
    """The system tier's kernel-written buffers (received, or sendmsg's
    copy-back), one per target and shape, sorted; returns them."""
    kept = {}
    for row, line, f in raw_lines(paths):
        if not is_system(row) or f["dir"] == "send":
            continue
        n_ranges = 0 if f["ranges"] == "none" else f["ranges"].count(",") + 1
        shape = (row["target"], f["dir"], f["msgs"], f["items"], f["trunc"],
                 int(f["flags"]) & 0x8, n_ranges)
        kernel = row["kernel"].replace(" ", "/")
        kept.setdefault(shape, (f"{row['target']} {kernel} {line}", row, f))
    with open(path, "w") as out:
        out.write("# Control buffers real kernels handed the conformance agents (system tier):\n"
                  "# TARGET KERNEL-ARCH/RELEASE RAW-LINE, one per target and shape.\n"
                  "# Written by fuzz/seeds.py --buffers; read by conformance/src/judge/kernel_buffers.rs.\n")
        for key in sorted(kept):
            out.write(kept[key][0] + "\n")
    print(f"{path}: {len(kept)} buffers")
    return [(row, f) for _, row, f in kept.values()]


def main():
    args = sys.argv[1:]
    system = []
    if len(args) >= 2 and args[0] == "--buffers":
        system = write_buffers(args[1], args[2:])
        args = args[2:]
    order = arch_order()
    added = {}

    def add(target, data):
        added[target] = added.get(target, 0) + write(target, data)

    # The system tier's buffers: only the representatives (the corpus stays
    # small); the user tiers' all (SHA-1 names deduplicate them).
    user = [(row, f) for row, _, f in raw_lines(args) if not is_system(row)]
    for row, f in user + system:
        target, controllen, flags = row["target"], int(f["controllen"]), int(f["flags"])
        buf = bytes.fromhex(f["hex"])
        header = struct.pack("<BHI", order.index(target), min(controllen, 0xFFFF), flags & 0xFFFFFFFF)
        add("cmsg_parse", header + buf)
        if target == "x86_64" and 0 < controllen <= len(buf):
            add("cmsg_differential", struct.pack("<H", controllen) + buf)

    # cmsg_differential: a final message with its padding cut, a header
    # with cmsg_len below the header size, one running past the end,
    # trailing bytes.
    two = struct.pack("<Qii", 16, 1, 2) + struct.pack("<Qii", 17, 3, 4) + b"\x09" + bytes(7)
    add("cmsg_differential", struct.pack("<H", 33) + two)
    add("cmsg_differential", struct.pack("<H", 0) + struct.pack("<Qii", 4, 0, 0))
    add("cmsg_differential", struct.pack("<H", 0) + struct.pack("<Qii", 16, 0, 0) + struct.pack("<Qii", 99, 0, 0))
    add("cmsg_differential", struct.pack("<H", 0) + struct.pack("<Qii", 16, 0, 0) + b"\x01\x02\x03")

    # cmsg_roundtrip: [target][skew][size u16] then ops: 0 push (level u32,
    # type u32, len/2 u8, data), 1 timestamping (flags u32), 2 placeholder
    # (capacity u8).
    for name in ("x86_64", "i686", "mips", "sparc64", "hppa", "alpha"):
        t = order.index(name)
        ops = (bytes([0]) + struct.pack("<IIB", 1, 1, 2) + b"\x03\x00\x00\x00"
               + bytes([1]) + struct.pack("<I", 0x2)
               + bytes([2, 16]))
        add("cmsg_roundtrip", struct.pack("<BBH", t, 0, 1024) + ops)
        add("cmsg_roundtrip", struct.pack("<BBH", t, 4, 64) + ops)           # skewed, small
        add("cmsg_roundtrip", struct.pack("<BBH", t, 0, 40) + bytes([2, 1, 2, 1, 2, 0, 2, 17]))

    # zc_tracker: [start kind][start] then ops: even = register, odd =
    # complete (lo kind in op, hi kind byte).
    add("zc_tracker", bytes([0]) + bytes([0] * 4) + bytes([3, 2, 0, 3, 1]))   # 4 sends, two ranges
    add("zc_tracker", bytes([1, 2]) + bytes([0] * 6) + bytes([3, 6, 7]))       # wrap at u32::MAX
    add("zc_tracker", bytes([0]) + bytes([0] * 9) + bytes([0x83, 1, 2]))      # full window, copied
    for target, n in sorted(added.items()):
        print(f"{target}: {n} new seeds")


if __name__ == "__main__":
    main()
