#!/usr/bin/env python3
"""The balloon stats tags 10..15 reach a QEMU that knows them (QEMU 10).

memcoop.ko sends OOM kills, allocation stalls, and scanned and reclaimed
memory (kswapd and direct) on every kernel.  Booted under QEMU 10 from
bookworm-backports (mclab --qemu 10), the guest OOM-kills a process that
eats memory; then qom-get guest-stats must carry stat-oom-kills and the
five others with the guest's own /proc/vmstat figures: at least what the
guest counted when the victim was gone, at most what it counted after the
host read them (the counters only grow).

Exit 0 pass, 1 fail.
Usage: qemu10_stats.py [QEMU_SERIES]  (default 10)
"""
import json
import re
import sys
import time

import mclab

MEM = 384                           # MiB, no swap
PATH = "/machine/peripheral/balloon0"
PAGE = 4096

# QEMU's name -> (the /proc/vmstat fields it sums, bytes per unit)
TAGS = {
    "stat-oom-kills": (["oom_kill"], 1),
    "stat-alloc-stalls": (["allocstall_"], 1),          # every zone
    "stat-async-scans": (["pgscan_kswapd"], PAGE),
    "stat-direct-scans": (["pgscan_direct"], PAGE),
    "stat-async-reclaims": (["pgsteal_kswapd"], PAGE),
    "stat-direct-reclaims": (["pgsteal_direct"], PAGE),
}

# The victim: busybox tail keeps the one endless line of /dev/zero.
GUEST_SCRIPT = r"""
vm() { echo "VMSTAT $1"; cat /proc/vmstat | sed "s/^/$1 /"; }
echo READY
read go < /dev/ttyS2
tail /dev/zero > /dev/null
echo "VICTIM exit $?"
vm AFTER
echo DONE
read go < /dev/ttyS2
vm END
"""


class Failed(Exception):
    pass


def vmstat(out, tag):
    """{field: value} of the guest's vmstat dump marked @tag."""
    return {k: int(v) for k, v in re.findall(r"(?m)^%s (\w+) (\d+)$" % tag, out)}


def expected(vm, fields, unit):
    return sum(v for k, v in vm.items()
               if any(k == f or (f.endswith("_") and k.startswith(f)) for f in fields)) * unit


def fresh(g, after, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = g.qmp("qom-get", path=PATH, property="guest-stats")
        if s["last-update"] > after:
            return s
        time.sleep(0.2)
    raise Failed("guest-stats not updated within %d s" % timeout)


def main():
    series = sys.argv[1] if len(sys.argv) > 1 else "10"
    mclab.install_signal_handlers()
    try:
        with mclab.Guest(mem=MEM, qemu=series, timeout=600, name="qemu10-stats") as g:
            ver = None
            g.start("sh", "-c", GUEST_SCRIPT)
            ver = g.qmp("query-version")["qemu"]
            if ver["major"] != int(series):
                raise Failed("QEMU %d.%d runs, want %s" % (ver["major"], ver["minor"], series))
            print("ok: QEMU %d.%d.%d" % (ver["major"], ver["minor"], ver["micro"]), flush=True)
            g.wait_for(r"(?m)^READY$", timeout=120)
            g.qmp("qom-set", path=PATH, property="guest-stats-polling-interval", value=1)
            s0 = fresh(g, 0)
            missing = [k for k in TAGS if k not in s0["stats"]]
            if missing:
                raise Failed("guest-stats lacks %s: %s" % (missing, s0["stats"]))
            if s0["stats"]["stat-oom-kills"] != 0:
                raise Failed("stat-oom-kills %d before any OOM kill" %
                             s0["stats"]["stat-oom-kills"])
            print("ok: all six tags present, stat-oom-kills 0 at boot", flush=True)
            g.send("go")
            g.wait_for(r"(?m)^DONE$", timeout=300)
            t_done = int(time.time())
            s1 = fresh(g, t_done)
            print("reply: %s" % json.dumps(s1, sort_keys=True), flush=True)
            g.send("go")
            rc = g.wait_exit(timeout=120)
            if rc != 0:
                raise Failed("guest script exited %d:\n%s" % (rc, g.output))
            out = g.output
            after, end = vmstat(out, "AFTER"), vmstat(out, "END")
            if after.get("oom_kill", 0) < 1:
                raise Failed("the guest OOM-killed nothing:\n%s" % out[:2000])
            st = s1["stats"]
            for k, (fields, unit) in TAGS.items():
                lo, hi = expected(after, fields, unit), expected(end, fields, unit)
                if not lo <= st[k] <= hi:
                    raise Failed("%s = %d, the guest counted %d .. %d (%s)" % (
                        k, st[k], lo, hi, "+".join(fields)))
                print("ok: %s = %d (guest: %d .. %d)" % (k, st[k], lo, hi), flush=True)
            if st["stat-direct-reclaims"] > st["stat-direct-scans"]:
                raise Failed("direct reclaims %d > direct scans %d" % (
                    st["stat-direct-reclaims"], st["stat-direct-scans"]))
            # (scans may be 0: with no swap and files in RAM there is nothing to scan)
            if st["stat-alloc-stalls"] < 1:
                raise Failed("an OOM kill without an allocation stall: %s" % st)
    except (Failed, mclab.LabError, mclab.QMPError) as e:
        print("FAIL: %s" % e, flush=True)
        return 1
    print("PASS: the stats tags 10..15 reach QEMU %s with the guest's figures" % series)
    return 0


if __name__ == "__main__":
    sys.exit(main())
