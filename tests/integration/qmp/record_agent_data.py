#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Record the inputs of memcoopd's policy unit tests from a real guest.

Boots one lab guest (mct-agenthog), polls qom-get guest-stats and
query-balloon once a second through a scenario (idle, a 160 MiB hog, the
balloon squeezing the guest to 400 MiB, the hog freed, the balloon let go)
and writes, into tests/unit/agent/data/:
  qmp-guest-stats-series.jsonl  {"t", "actual", "phase", "reply"} per second
  guest-meminfo*.txt, guest-psi*.txt   the guest's /proc files
Run: MCLAB_BUILDDIR=build-agent PYTHONPATH=tests/lab python3 \
     tests/integration/qmp/record_agent_data.py [driver]
"""
import json
import os
import re
import sys
import time

import mclab

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                    "..", "..", "unit", "agent", "data")


def cat(g, path, name):
    pat = r"BEGIN %s\n([\s\S]*?)END\n" % re.escape(path)
    before = len(re.findall(pat, g.output))
    g.send("cat " + path)
    deadline = time.time() + 30
    while True:
        copies = re.findall(pat, g.output)
        if len(copies) > before:
            break
        if time.time() > deadline:
            raise mclab.LabError("no answer to cat " + path)
        time.sleep(0.2)
    with open(os.path.join(DATA, name), "w") as f:
        f.write(copies[-1])


def main():
    driver = sys.argv[1] if len(sys.argv) > 1 else "memcoop"
    series = []
    with mclab.Guest(mem=512, driver=driver, append="psi=1",
                     balloon_opts={"deflate-on-oom": "on"},
                     timeout=300) as g:
        g.start("mct-agenthog")
        g.wait_for(r"READY", timeout=120)
        g.qmp("qom-set", path="/machine/peripheral/balloon0",
              property="guest-stats-polling-interval", value=1)
        t0 = time.monotonic()

        def sample(phase, secs):
            end = time.monotonic() + secs
            while time.monotonic() < end:
                r = g.qmp("qom-get", path="/machine/peripheral/balloon0",
                          property="guest-stats")
                series.append({"t": round(time.monotonic() - t0, 3),
                               "wall": int(time.time()),
                               "actual": g.balloon_actual(),
                               "phase": phase, "reply": {"return": r}})
                time.sleep(1)

        sample("idle", 8)
        cat(g, "/proc/meminfo", "guest-meminfo.txt")
        cat(g, "/proc/pressure/memory", "guest-psi-idle.txt")
        g.send("hold 160")
        g.wait_for(r"HOLD 160", timeout=60)
        sample("hog", 6)
        g.qmp("balloon", value=400 << 20)
        sample("squeezed", 20)
        cat(g, "/proc/meminfo", "guest-meminfo-squeezed.txt")
        cat(g, "/proc/pressure/memory", "guest-psi-squeezed.txt")
        g.send("hold 0")
        g.wait_for(r"HOLD 0", timeout=60)
        sample("freed", 6)
        g.qmp("balloon", value=512 << 20)
        sample("released", 8)
        g.send("exit")
        g.wait_exit(timeout=60)
    with open(os.path.join(DATA, "qmp-guest-stats-series.jsonl"), "w") as f:
        for s in series:
            f.write(json.dumps(s, sort_keys=True) + "\n")
    print("recorded %d samples" % len(series))
    return 0


if __name__ == "__main__":
    sys.exit(main())
