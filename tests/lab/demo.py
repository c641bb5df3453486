"""The main job: guests, agent, squeeze, report.

Boots two 1 GiB guests side by side, one with the stock virtio_balloon and
one with memcoop.ko, each running the memcache-like cache (about 600 MiB of
values) under load from memcache-load.  memcoopd manages both through QMP;
the operator (this script, through memcoopctl) lowers both targets by
512 MiB.  Then it reports, per guest: whether and when the balloon reached
the target, OOM kills, whether the cache survived, its requests per second
before/during/after, and the shrink requests it answered; plus what
memcoopd logged and its KSM figures.  memcache-load checks every value it
gets back: its exit status and its errors= and corrupt= totals are part
of the verdict (a corrupt value fails the demo for either guest; for
memcoop, so does any error or a load that did not end cleanly).
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time

import mclab

MEM_MIB = 1024
CACHE_MIB = 600
SQUEEZE_MIB = 512
SQUEEZE_WAIT_S = 60
AFTER_S = 10

GUEST_SCRIPT = r"""
memcache-like -m %(max)d &
c=$!
sleep 1
memcache-load -f %(fill)d -t 0 &
l=$!
read x < /dev/ttyS2
kill $l 2>/dev/null; wait $l; echo "LOAD-EXIT $?"
if kill -0 $c 2>/dev/null; then echo "CACHE-ALIVE"; else echo "CACHE-DEAD"; fi
kill $c 2>/dev/null; wait $c 2>/dev/null
echo "OOM-KILLS $(dmesg | grep -c 'Killed process')"
for f in /sys/kernel/debug/memcoop/balloon /sys/kernel/debug/memcoop/relay; do
	[ -f $f ] && { echo "== $f"; cat $f; }
done
exit 0
"""


def say(msg=""):
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


def build(srcdir, builddir):
    if not os.path.exists(os.path.join(builddir, "build.ninja")):
        if subprocess.run(["meson", "setup", builddir], cwd=srcdir).returncode:
            raise mclab.LabError("meson setup %s failed" % builddir)
    r = subprocess.run(["ninja", "-C", builddir], cwd=srcdir, capture_output=True, text=True)
    if r.returncode:
        raise mclab.LabError("the build failed:\n" + r.stdout[-3000:] + r.stderr[-2000:])


class Load:
    """Follows memcache-load's once-a-second LOAD lines with host time."""

    def __init__(self, guest):
        self.g = guest
        self.seen = 0
        self.samples = []      # (host monotonic time, rps)

    def poll(self):
        lines = self.g.output.splitlines()
        now = time.monotonic()
        for line in lines[self.seen:]:
            m = re.match(r"LOAD t=\S+ rps=(\d+)", line)
            if m:
                self.samples.append((now, int(m.group(1))))
        self.seen = len(lines)

    def rate(self, t0, t1):
        v = [r for t, r in self.samples if t0 <= t < t1]
        return sum(v) / len(v) if v else 0.0


def ctl(builddir, sock, *args):
    r = subprocess.run([os.path.join(builddir, "host-agent", "memcoopctl"), "-s", sock] +
                       list(args), capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


def demo(srcdir, builddir):
    build(srcdir, builddir)
    tmp = tempfile.mkdtemp(prefix="memcoop-demo-")
    sock = os.path.join(tmp, "memcoopd.sock")
    conf = os.path.join(tmp, "memcoopd.conf")
    log = os.path.join(tmp, "memcoopd.log")
    agent = None
    guests = {}
    try:
        say("== memcoop demo: two %d MiB guests, each with a %d MiB cache under load" %
            (MEM_MIB, CACHE_MIB))
        script = GUEST_SCRIPT % {"max": CACHE_MIB + 100, "fill": CACHE_MIB}
        for name, driver in (("stock", "stock"), ("memcoop", "memcoop")):
            g = mclab.Guest(mem=MEM_MIB, driver=driver, qmp_extra=True, name=name,
                            builddir=builddir, timeout=300)
            guests[name] = g
            g.start("sh", "-c", script)
            say("   %-8s booted in %.1fs (driver %s, QEMU pid %d)" % (
                name, g.boot_seconds, "virtio_balloon" if driver == "stock" else "memcoop.ko",
                g.qemu_pid))
        for name, g in guests.items():
            m = g.wait_for(r"FILLED mib=(\d+).*? secs=(\S+)\n", timeout=240)
            say("   %-8s cache filled: %s MiB in %ss" % (name, m.group(1), m.group(2)))

        with open(conf, "w") as f:
            f.write('socket "%s"\nbackend qmp\ntick 1s\nstats-period 1\nauto no\n'
                    'ksm unmanaged\nmetrics off\nrestore-on-exit yes\n' % sock)
            for name, g in guests.items():
                f.write('guest %s {\n\tqmp "%s"\n}\n' % (name, g.qmp_path2))
        agent = subprocess.Popen([os.path.join(builddir, "host-agent", "memcoopd"), "-d", "-v",
                                  "-f", conf], stdout=open(log, "w"), stderr=subprocess.STDOUT)
        for _ in range(100):
            rc, out, _ = ctl(builddir, sock, "-j", "status")
            if rc == 0 and len(json.loads(out).get("guests", [])) == len(guests) and \
                    all(x["state"] == "online" for x in json.loads(out)["guests"]):
                break
            time.sleep(0.2)
        else:
            raise mclab.LabError("memcoopd did not come up with both guests:\n" +
                                 open(log).read()[-2000:])
        say("== memcoopd is managing both guests; memcoopctl status:")
        say(ctl(builddir, sock, "status")[1].rstrip())

        loads = {n: Load(g) for n, g in guests.items()}
        t_before = time.monotonic()
        while time.monotonic() - t_before < 5:
            for ld in loads.values():
                ld.poll()
            time.sleep(0.25)
        target = MEM_MIB - SQUEEZE_MIB
        say("== squeeze: memcoopctl set GUEST target %dM (both guests, now)" % target)
        t_squeeze = time.monotonic()
        for name in guests:
            rc, out, err = ctl(builddir, sock, "set", name, "target", "%dM" % target)
            if rc != 0:
                raise mclab.LabError("memcoopctl set %s failed: %s" % (name, err.strip()))
        reached = {}
        while time.monotonic() - t_squeeze < SQUEEZE_WAIT_S and len(reached) < len(guests):
            for name, g in guests.items():
                loads[name].poll()
                if name in reached or g.proc.poll() is not None:
                    continue
                if g.balloon_actual() <= (target << 20) + (4 << 20):
                    reached[name] = time.monotonic() - t_squeeze
                    say("   %-8s reached %d MiB after %.1fs" % (name, target, reached[name]))
            time.sleep(0.1)
        t_reached = time.monotonic()
        while time.monotonic() - t_reached < AFTER_S:
            for ld in loads.values():
                ld.poll()
            time.sleep(0.25)
        t_end = time.monotonic()
        status = ctl(builddir, sock, "status")[1].rstrip()

        results = {}
        for name, g in guests.items():
            actual = g.balloon_actual() >> 20 if g.proc.poll() is None else -1
            g.send("stop")
            rc = g.wait_exit(timeout=120)
            out = g.output
            m = re.search(r"OOM-KILLS (\d+)", out)
            le = re.search(r"^LOAD-EXIT (\d+)$", out, re.M)
            done = re.search(r"^DONE ops=\d+ .*errors=(\d+) corrupt=(\d+)$", out, re.M)
            results[name] = {
                "load_exit": int(le.group(1)) if le else -1,
                "load_errors": int(done.group(1)) if done else -1,
                "load_corrupt": int(done.group(2)) if done else -1,
                "reached_s": reached.get(name),
                "actual_mib": actual,
                "oom_kills": int(m.group(1)) if m else -1,
                "cache_alive": "CACHE-ALIVE" in out,
                "shrinks": len(re.findall(r"^SHRINK ", out, re.M)),
                "rps_before": loads[name].rate(t_before, t_squeeze),
                "rps_during": loads[name].rate(t_squeeze, t_reached),
                "rps_after": loads[name].rate(t_reached, t_end),
                "exit": rc,
            }
        agent.terminate()
        agent.wait(10)
        agent = None

        say("== memcoopd after the squeeze:")
        say(status)
        say("== why memcoopd changed each target (its log):")
        for line in open(log):
            if re.search(r"target", line):
                say("   " + line.rstrip())
        say("")
        say("== report (target %d MiB, %d MiB taken from each guest)" % (target, SQUEEZE_MIB))
        say("%-10s %-12s %-10s %-9s %-7s %-8s %-22s %s" % (
            "guest", "reached in", "actual", "OOM kills", "cache", "shrinks",
            "cache req/s before/during/after", "load exit/errors/corrupt"))
        for name, r in results.items():
            say("%-10s %-12s %-10s %-9d %-7s %-8d %-31s %d / %d / %d" % (
                name,
                "%.1fs" % r["reached_s"] if r["reached_s"] is not None
                else "never (%ds)" % SQUEEZE_WAIT_S,
                "%d MiB" % r["actual_mib"], r["oom_kills"],
                "alive" if r["cache_alive"] else "DEAD", r["shrinks"],
                "%.0f / %.0f / %.0f" % (r["rps_before"], r["rps_during"], r["rps_after"]),
                r["load_exit"], r["load_errors"], r["load_corrupt"]))
        say("")
        mc = results["memcoop"]
        ok = mc["reached_s"] is not None and mc["oom_kills"] == 0 and mc["cache_alive"]
        say("demo: memcoop %s" % ("reached the target with the cache alive and no OOM kill"
                                  if ok else "did NOT reach the target cleanly"))
        load_ok = mc["load_exit"] == 0 and mc["load_errors"] == 0 and mc["load_corrupt"] == 0
        if not load_ok:
            say("demo: FAIL: memcoop guest's memcache-load exit %d, %d errors, %d corrupt "
                "values (-1: not reported)" % (mc["load_exit"], mc["load_errors"],
                                                mc["load_corrupt"]))
        corrupt = [n for n, r in results.items() if r["load_corrupt"] > 0]
        if corrupt:
            say("demo: FAIL: memcache-load got corrupt values in %s" % ", ".join(corrupt))
        return 0 if ok and load_ok and not corrupt else 1
    finally:
        if agent is not None:
            agent.kill()
            agent.wait()
        for g in guests.values():
            g.close()
        subprocess.run(["rm", "-rf", tmp])
