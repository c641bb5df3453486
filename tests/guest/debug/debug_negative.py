#!/usr/bin/env python3
"""The debug kernel's reports fail a run (suite debug): a test module
commits one defect per guest (mctest_bugs.ko bug=...) and the lab must
exit 125 with the report; the control run (bug=none) must pass, so the
failures are the defects', not the kernel's."""
import os
import subprocess
import sys

import mclab

MCLAB = os.path.join(os.environ["MCLAB_SRCDIR"], "tests", "lab", "mclab")
KO = "/lib/modules/mc/mctest_bugs.ko"

# bug -> what the console must show
CASES = [
    ("uaf", "BUG: KASAN: slab-use-after-free"),
    ("leak", "kmemleak: memory leak in mctest_bugs"),
    ("lockorder", "WARNING: possible circular locking dependency detected"),
    ("sleep", "BUG: sleeping function called from invalid context"),
]


def lab_run(*cmd):
    r = subprocess.run([sys.executable, MCLAB, "run", "--quiet", "--timeout", "300",
                        "--"] + list(cmd), capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


def main():
    mclab.install_signal_handlers()
    failures = 0
    rc, out = lab_run("insmod", KO, "bug=none")
    ok = rc == 0
    print("%s: the control module (bug=none) passes (exit %d)" % ("ok" if ok else "FAIL", rc))
    if not ok:
        print(out[-3000:])
        failures += 1
    for bug, report in CASES:
        rc, out = lab_run("insmod", KO, "bug=" + bug)
        ok = rc == 125 and report in out
        print("%s: bug=%s fails the run with %r (exit %d)" % (
            "ok" if ok else "FAIL", bug, report, rc))
        if not ok:
            print(out[-3000:])
            failures += 1
    print("debug-negative: %d failed" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
