#!/usr/bin/env python3
"""Benchmark writetrack: the cost of a write barrier per tracked write and
per harvested page, /dev/memcoop write tracking against mprotect + SIGSEGV
+ mprotect and against soft-dirty (clear_refs + pagemap), in the guest.

Runs mcb-writetrack in a guest once per configuration: a quarter of the
heap written per cycle in random order and in address order (the mprotect
barrier's best case), and a sparse one (64 pages of a 64 MiB heap, where
soft-dirty pays for scanning the whole heap), prints its BENCH lines and
fails (exit 1) when memcoop's cost per tracked write is not at least GOAL
times below the mprotect+SIGSEGV barrier's on the same memory, or when a
whole cycle (write + harvest, per page written) costs more than
soft-dirty's in any configuration, or not SPARSE_GOAL times less in the
sparse one (a large heap, few writes: what the write log is for).  Where
the kernel has PAGEMAP_SCAN with asynchronous uffd-wp (6.7+), the cycle
is compared with it too (printed, not a goal).

    writetrack.py [pages [writes-per-cycle [cycles]]]
"""
import os
import re
import sys

import mclab

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import benchlib  # noqa: E402

GOAL = 3.0
SPARSE_GOAL = 2.0

mclab.install_signal_handlers()
args = sys.argv[1:] or ["4096", "1024", "15"]
runs = [(args, "random", ""), (args, "seq", "-seq"),
        (["16384", "64", args[2] if len(args) > 2 else "15"], "random", "-sparse")]
ok = True
for argv, pattern, label in runs:
    try:
        with mclab.Guest(mem=1024, smp=1, timeout=600) as g:
            g.start("mcb-writetrack", *argv, pattern, label)
            rc = g.wait_exit(timeout=600, stream=lambda s: print(s, end="", flush=True))
            out = g.output
    except mclab.LabError as e:
        print("FAIL: lab: %s" % e)
        sys.exit(1)
    if rc != 0:
        print("FAIL: mcb-writetrack %s exited %d" % (pattern, rc))
        sys.exit(1)
    def bench(name):
        return benchlib.bench(out, name)

    ratio = bench("writetrack.write.memcoop" + label)[2]
    met = ratio >= GOAL
    ok = ok and met
    print("goal (%s %s): memcoop per tracked write >= %.1fx cheaper than "
          "mprotect+SIGSEGV: %.2fx, %s" % (" ".join(argv), pattern, GOAL, ratio,
                                          "met" if met else "NOT met"),
          flush=True)
    mine = bench("writetrack.cycle.memcoop" + label)[0]
    sd = bench("writetrack.cycle.softdirty" + label)[0]
    want = SPARSE_GOAL if label == "-sparse" else 1.0
    met = sd >= want * mine
    ok = ok and met
    print("goal (%s %s): memcoop cycle %.1f ns <= soft-dirty's %.1f ns / %.1f: %.2fx, %s"
          % (" ".join(argv), pattern, mine, sd, want, sd / mine, "met" if met else "NOT met"),
          flush=True)
    if re.search(r"^BENCH name=writetrack\.cycle\.pagemap-scan%s " % re.escape(label), out, re.M):
        ps = bench("writetrack.cycle.pagemap-scan" + label)[0]
        print("(%s %s): memcoop cycle %.1f ns, pagemap-scan's %.1f ns: %.2fx"
              % (" ".join(argv), pattern, mine, ps, ps / mine), flush=True)
sys.exit(0 if ok else 1)
