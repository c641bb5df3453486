"""The main job: guests, Redis, memcoopd's automatic policy, report, plot.

Boots two 1 GiB swapless guests side by side, one with the stock
virtio_balloon and one with memcoop.ko (+ memcoop-guestd with its Redis
adapter, when the build has it).  Each runs Debian's redis-server (the
host's /usr over 9p: the lab's --host-usr) with maxmemory 600 MiB and
allkeys-lru, filled and then served by redis-benchmark over a key space
larger than the cache.  Then memcoopd manages both through QMP in
automatic mode with a host floor set 1 GiB above the host's MemAvailable:
the host is short, and the policy, not an operator, decides each tick how
much to take from which guest (each guest's lower limit: 512 MiB).  Its
log says why it changed each target.

Reported per guest: memory given to the host, OOM kills, Redis alive,
ops/s and hit rate before/during/after (Redis's own counters), keys held
before and at the end and keys lost (evicted); and a PNG plot per guest
over time (target, actual, Redis RSS, ops/s) whose path is printed.
Takes about 5 minutes on 2 cores (TCG).

Exit 0 when the run completed and the memcoop guest kept Redis alive
without an OOM kill; 1 otherwise.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time

import hostapps
import mclab

MEM_MIB = 1024
REDIS_MIB = 600
VALUE = 4000
KEYSPACE_PCT = 160
SHORT_MIB = 1024        # how far the host is below its floor
GUEST_MIN_MIB = 512     # each guest's lower limit
BEFORE_S = 10
POLICY_S = 70

GUESTD_START = r"""
if command -v memcoop-guestd > /dev/null && [ -c /dev/memcoop ]; then
	printf 'socket "/tmp/guestd.sock"\napp redis {\n\ttype redis\n\taddress "127.0.0.1:6379"\n\tfloor 32M\n}\n' > /tmp/guestd.conf
	chmod 600 /tmp/guestd.conf
	memcoop-guestd -f /tmp/guestd.conf > /tmp/guestd.log 2>&1 &
	echo "GUESTD started"
else
	echo "GUESTD absent"
fi
"""
GUESTD_STOP = r"""
if [ -f /tmp/guestd.conf ]; then
	memcoop-guestd status -s /tmp/guestd.sock 2>&1 | sed 's/^/GUESTD-STATUS /'
	sed 's/^/GUESTD-LOG /' /tmp/guestd.log
fi
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


def ctl(builddir, sock, *args):
    r = subprocess.run([os.path.join(builddir, "host-agent", "memcoopctl"), "-s", sock] +
                       list(args), capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


def host_avail_mib():
    for line in open("/proc/meminfo"):
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    raise mclab.LabError("no MemAvailable in /proc/meminfo")


def plot(path, series, samples, offsets):
    """Per guest over time: target, actual, Redis RSS (MiB), ops/s."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(series), 1, figsize=(10, 4 * len(series)), sharex=True)
    for ax, (name, pts) in zip(axes, series.items()):
        t = [p[0] for p in pts]
        ax.plot(t, [p[1] for p in pts], label="target (memcoopd)", drawstyle="steps-post")
        ax.plot(t, [p[2] for p in pts], label="actual (balloon)")
        smp = samples[name]
        st = [s["t"] + offsets[name] for s in smp]
        ax.plot(st, [s.get("rss_kib", 0) / 1024 for s in smp], label="Redis RSS")
        ax.set_ylabel("MiB")
        ax.set_ylim(0, MEM_MIB + 64)
        ax.set_title("guest %s" % name)
        ax2 = ax.twinx()
        ops = [(b["t"] + offsets[name], (b["ops"] - a["ops"]) / (b["t"] - a["t"]))
               for a, b in zip(smp, smp[1:])
               if "ops" in a and "ops" in b and b["t"] > a["t"] and b["ops"] >= a["ops"]]
        ax2.plot([o[0] for o in ops], [o[1] for o in ops], color="grey", alpha=0.6,
                 label="Redis ops/s")
        ax2.set_ylabel("ops/s")
        ax2.set_ylim(bottom=0)
        lines = ax.get_legend_handles_labels()
        lines2 = ax2.get_legend_handles_labels()
        ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="lower left", fontsize=8)
        ax.axvline(0, color="black", linestyle=":")
    axes[-1].set_xlabel("seconds since memcoopd started (automatic policy)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def demo(srcdir, builddir):
    build(srcdir, builddir)
    missing = hostapps.missing_programs()
    if missing:
        raise mclab.LabError("missing: %s (sh .ci/deps.sh)" % ", ".join(missing))
    tmp = tempfile.mkdtemp(prefix="memcoop-demo-")
    sock = os.path.join(tmp, "memcoopd.sock")
    conf = os.path.join(tmp, "memcoopd.conf")
    log = os.path.join(tmp, "memcoopd.log")
    agent = None
    guests = {}
    try:
        say("== memcoop demo: two %d MiB swapless guests, each with Debian's redis-server "
            "holding %d MiB under redis-benchmark" % (MEM_MIB, REDIS_MIB))
        fits = REDIS_MIB * 1048576 // (VALUE + 200)
        keys = fits * KEYSPACE_PCT // 100
        for name, driver in (("stock", "stock"), ("memcoop", "memcoop")):
            script = hostapps.REDIS_SCRIPT % {
                "maxmem_mib": REDIS_MIB, "keys": keys, "fill_n": keys * 3 // 2,
                "value": VALUE, "before": GUESTD_START if driver == "memcoop" else "",
                "after": GUESTD_STOP if driver == "memcoop" else ""}
            g = mclab.Guest(mem=MEM_MIB, driver=driver, qmp_extra=True, name=name,
                            builddir=builddir, timeout=600, host_usr=True)
            guests[name] = g
            g.start("sh", "-c", script)
            say("   %-8s booted in %.1fs (driver %s, QEMU pid %d)" % (
                name, g.boot_seconds, "virtio_balloon" if driver == "stock" else "memcoop.ko",
                g.qemu_pid))
        for name, g in guests.items():
            m = g.wait_for(r"FILLED keys=(\d+) secs=(\S+)\n", timeout=600)
            say("   %-8s Redis filled: %s keys of %d bytes in %ss (key space %d keys)" % (
                name, m.group(1), VALUE, m.group(2), keys))
        gd = guests["memcoop"].wait_for(r"GUESTD (\w+)", timeout=60).group(1)
        say("   memcoop  memcoop-guestd %s" % (
            "runs with its Redis adapter" if gd == "started" else
            "is not in this build: memcoop.ko alone cannot ask Redis for anything"))
        for g in guests.values():
            g.wait_for(r"SAMPLE t=", timeout=60)
        time.sleep(BEFORE_S)

        avail = host_avail_mib()
        floor = avail + SHORT_MIB
        with open(conf, "w") as f:
            f.write('socket "%s"\nbackend qmp\ntick 1s\nstats-period 1\nauto yes\n'
                    'host-floor %dM\nhost-comfort %dM\nguest-reserve 64M\nguest-slack 64M\n'
                    'step-max 128M\ncalm-ticks 2\nhold 30s\n'
                    'ksm unmanaged\nmetrics off\nrestore-on-exit no\n' % (
                        sock, floor, floor + 256))
            for name, g in guests.items():
                f.write('guest %s {\n\tqmp "%s"\n\tmode auto\n\tmin %dM\n}\n' % (
                    name, g.qmp_path2, GUEST_MIN_MIB))
        say("== memcoopd, automatic mode: host MemAvailable %d MiB, host-floor %d MiB: "
            "the host is short by %d MiB;" % (avail, floor, SHORT_MIB))
        say("   each guest's lower limit is %d MiB; the policy decides the rest" %
            GUEST_MIN_MIB)
        for g in guests.values():
            g.send("policy")
        marks = {n: float(g.wait_for(r"MARK squeeze t=([\d.]+)", timeout=30).group(1))
                 for n, g in guests.items()}
        t_start = time.monotonic()
        agent = subprocess.Popen([os.path.join(builddir, "host-agent", "memcoopd"), "-d", "-v",
                                  "-f", conf], stdout=open(log, "w"), stderr=subprocess.STDOUT)
        series = {n: [] for n in guests}
        status = None
        while time.monotonic() - t_start < POLICY_S:
            rc, out, _ = ctl(builddir, sock, "-j", "status")
            now = time.monotonic() - t_start
            if rc == 0:
                status = json.loads(out)
                for x in status.get("guests", []):
                    if x["name"] in series and x["state"] == "online":
                        series[x["name"]].append((now, x["target"] >> 20, x["actual"] >> 20))
            if agent.poll() is not None:
                raise mclab.LabError("memcoopd exited:\n" + open(log).read()[-2000:])
            time.sleep(1)
        text_status = ctl(builddir, sock, "status")[1].rstrip()
        agent.terminate()
        agent.wait(10)
        agent = None

        results = {}
        for name, g in guests.items():
            actual = g.balloon_actual() >> 20 if g.proc.poll() is None else -1
            g.send("stop")
            rc = g.wait_exit(timeout=180)
            out = g.output
            smp = hostapps.samples(out)
            mark = marks[name]
            before = hostapps.phase(smp, mark - BEFORE_S, mark)
            during = hostapps.phase(smp, mark, mark + POLICY_S / 2)
            after = hostapps.phase(smp, mark + POLICY_S / 2, mark + POLICY_S + 30)
            first = [s for s in smp if s["t"] < mark and "evicted" in s]
            last = [s for s in smp if "evicted" in s]
            m = re.search(r"^OOM-KILLS (\d+)$", out, re.M)
            results[name] = {
                "actual": actual, "exit": rc, "samples": smp,
                "offset": -mark,
                "given": MEM_MIB - actual if actual >= 0 else -1,
                "oom": int(m.group(1)) if m else -1,
                "alive": "APP-ALIVE" in out,
                "phases": (before, during, after),
                "keys_before": first[-1]["keys"] if first else float("nan"),
                "keys_end": smp[-1].get("keys", 0) if smp and "ops" in smp[-1] else 0,
                "lost": (last[-1]["evicted"] - first[-1]["evicted"]) if first and last
                else float("nan"),
                "guestd": [line[14:] for line in out.splitlines()
                           if line.startswith("GUESTD-STATUS ")],
                "guestd_log": [line[11:] for line in out.splitlines()
                               if line.startswith("GUESTD-LOG ")],
            }

        say("== memcoopd at the end:")
        say(text_status)
        say("== why memcoopd changed each target (its log):")
        for line in open(log):
            if re.search(r"target \d", line):
                say("   " + line.rstrip())
        mc = results["memcoop"]
        if mc["guestd"]:
            say("== memcoop-guestd in the memcoop guest (status, then its log):")
            for line in mc["guestd"] + mc["guestd_log"][-12:]:
                say("   " + line)
        say("")
        say("== report (%d s of automatic policy; 'during' is its first half, 'after' "
            "the second)" % POLICY_S)
        say("%-8s %-11s %-5s %-6s %-28s %-22s %s" % (
            "guest", "gave host", "OOM", "Redis", "ops/s before/during/after",
            "hit % before/dur/after", "keys before -> end (evicted)"))
        for name, r in results.items():
            b, d, a = r["phases"]
            say("%-8s %-11s %-5d %-6s %-28s %-22s %.0f -> %.0f (%.0f)" % (
                name, "%d MiB" % r["given"], r["oom"], "alive" if r["alive"] else "DEAD",
                "%.0f / %.0f / %.0f" % (b["ops_s"], d["ops_s"], a["ops_s"]),
                "%.0f / %.0f / %.0f" % (100 * b["hit"], 100 * d["hit"], 100 * a["hit"]),
                r["keys_before"], r["keys_end"], r["lost"]))
        png = os.path.join(builddir, "memcoop-demo.png")
        plot(png, series, {n: r["samples"] for n, r in results.items()},
             {n: r["offset"] for n, r in results.items()})
        say("")
        say("plot: %s" % png)
        ok = mc["oom"] == 0 and mc["alive"]
        say("demo: the memcoop guest gave %d MiB %s; the stock guest gave %d MiB%s" % (
            mc["given"], "with Redis alive and no OOM kill" if ok else
            "but Redis died or the OOM killer ran", results["stock"]["given"],
            "" if results["stock"]["alive"] else " and lost Redis"))
        return 0 if ok else 1
    finally:
        if agent is not None:
            agent.kill()
            agent.wait()
        for g in guests.values():
            g.close()
        subprocess.run(["rm", "-rf", tmp])
