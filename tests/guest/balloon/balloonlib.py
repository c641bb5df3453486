"""Host side of the balloon tests: a guest running `mct-balloon agent`,
commands to it, and small checks.  Used by balloon_qmp.py and the
benchmark (tests/bench/balloon)."""
import re
import sys
import time

import mclab

MIB = 1 << 20


class Failed(Exception):
    """A check failed."""


# guest CPUs of every AgentGuest that does not say (balloon_qmp.py --smp N)
SMP = 1


class AgentGuest(mclab.Guest):
    """A guest whose program is `mct-balloon agent`."""

    def __init__(self, **kw):
        kw.setdefault("smp", SMP)
        super().__init__(**kw)
        self.seq = 0

    def boot(self):
        self.start("mct-balloon", "agent")
        self.wait_for(r"AGENT READY", timeout=120)
        return self

    def cmd(self, line, timeout=120):
        """Run one agent command; returns (answer after OK, [extra lines])."""
        self.seq += 1
        tag = "c%d" % self.seq
        self.send("%s %s" % (tag, line))
        # whole lines only: "$" would also match a line still being written
        m = self.wait_for(r"(?m)^%s (OK|ERR)([^\n]*)\n" % tag, timeout=timeout)
        extra = re.findall(r"(?m)^%s C (.*)$" % tag, self.output)
        if m.group(1) != "OK":
            raise Failed("guest command %r: %s" % (line, m.group(2).strip()))
        return m.group(2).strip(), extra

    def meminfo(self):
        """(MemTotal, MemFree, MemAvailable) in KiB."""
        ans, _ = self.cmd("meminfo")
        return tuple(int(x) for x in ans.split())

    def free_kib(self):
        """MemFree plus the per-cpu free lists (which MemFree leaves out), KiB:
        the guest's meminfo answer counts both already (read_meminfo())."""
        return self.meminfo()[1]

    def counters(self, what="counters"):
        """The driver's debugfs counters (or @what="vmstat": /proc/vmstat)."""
        _, lines = self.cmd(what)
        out = {}
        for line in lines:
            k, v = line.split()
            out[k] = int(v)
        return out

    def settled_counters(self, timeout=10):
        """The counters once inflated_pages == deflated_pages (or after
        @timeout s): a request is counted when its pages are freed, after
        `actual` and size_pages moved, so on 2 CPUs a reader can see the
        last one still under way."""
        cnt = wait_until(lambda: (lambda x: x if x["inflated_pages"] == x["deflated_pages"]
                                  else None)(self.counters()), timeout)
        return cnt or self.counters()

    def cpu(self):
        """Guest (busy, idle) seconds from /proc/stat."""
        ans, _ = self.cmd("cpu")
        busy, idle, hz = (int(x) for x in ans.split())
        return busy / hz, idle / hz

    def finish(self, code=0):
        self.send("%s exit %d" % ("c-exit", code))
        return self.wait_exit(timeout=120)


class Checker:
    def __init__(self, name):
        self.name = name
        self.failures = 0

    def check(self, cond, what):
        print("%s: %s" % ("ok" if cond else "FAIL", what), flush=True)
        if not cond:
            self.failures += 1
        return cond

    def require(self, cond, what):
        if not self.check(cond, what):
            raise Failed(what)


def run(main):
    """Run main(checker); exit 0 on success, 1 on failure."""
    mclab.install_signal_handlers()
    c = Checker(main.__name__)
    try:
        main(c)
    except (Failed, mclab.LabError, mclab.QMPError) as e:
        print("FAIL: %s" % e, flush=True)
        c.failures += 1
    sys.exit(1 if c.failures else 0)


def wait_actual(g, mib, timeout=120, tolerance_mib=0):
    return g.wait_actual(mib, timeout=timeout, tolerance_mib=tolerance_mib)


def wait_until(fn, timeout, step=0.2):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return None
