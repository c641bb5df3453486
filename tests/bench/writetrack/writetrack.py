#!/usr/bin/env python3
"""Benchmark writetrack: the cost of a write barrier per tracked write and
per harvested page, /dev/memcoop write tracking against mprotect + SIGSEGV
+ mprotect and against soft-dirty (clear_refs + pagemap), in the guest.

Runs mcb-writetrack in a guest once per write pattern (random order, and
address order: the mprotect barrier's best case), prints its BENCH lines
and fails (exit 1) when memcoop's cost per tracked write is not at least
GOAL times below the mprotect+SIGSEGV barrier's on the same memory.

    writetrack.py [pages [writes-per-cycle [cycles]]]
"""
import re
import sys

import mclab

GOAL = 3.0

mclab.install_signal_handlers()
args = sys.argv[1:] or ["4096", "1024", "15"]
ok = True
for pattern in ("random", "seq"):
    try:
        with mclab.Guest(mem=1024, smp=1, timeout=600) as g:
            g.start("mcb-writetrack", *args, pattern)
            rc = g.wait_exit(timeout=600, stream=lambda s: print(s, end="", flush=True))
            out = g.output
    except mclab.LabError as e:
        print("FAIL: lab: %s" % e)
        sys.exit(1)
    if rc != 0:
        print("FAIL: mcb-writetrack %s exited %d" % (pattern, rc))
        sys.exit(1)
    name = "writetrack.write.memcoop" + ("-seq" if pattern == "seq" else "")
    m = re.search(r"^BENCH name=%s value=\S+ unit=ns baseline=\S+ ratio=([0-9.]+)"
                  % re.escape(name), out, re.M)
    if not m:
        print("FAIL: no %s line" % name)
        sys.exit(1)
    ratio = float(m.group(1))
    met = ratio >= GOAL
    ok = ok and met
    print("goal (%s order): memcoop per tracked write >= %.1fx cheaper than "
          "mprotect+SIGSEGV: %.2fx, %s" % (pattern, GOAL, ratio, "met" if met else "NOT met"),
          flush=True)
sys.exit(0 if ok else 1)
