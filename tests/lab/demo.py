"""The main job: guests, Redis, memcoopd, report, plot.

Boots two 1 GiB swapless guests side by side, one with the stock
virtio_balloon and one with memcoop.ko (+ memcoop-guestd with its Redis
adapter, when the build has it).  Each runs Debian's redis-server (the
host's /usr over 9p: the lab's --host-usr) with maxmemory 600 MiB and
allkeys-lru, filled and then served by redis-benchmark over a key space
larger than the cache.  memcoopd manages both through QMP in automatic
mode (lower limit 512 MiB each).  The operator takes 512 MiB from each
guest (memcoopctl set GUEST target 512M); then both go back to automatic
mode and the policy decides from the guests' and the host's memory
whether to give memory back; its log says why it changed each target.

Reported per guest: time to the target, the balloon at the end, OOM
kills, Redis alive, ops/s and hit rate before/during the squeeze and
under the automatic policy (Redis's own counters), keys held before and
at the end and keys evicted; and a PNG plot per guest over time (target,
actual, Redis RSS, ops/s) whose path is printed.  About 5 minutes on 2
idle cores (TCG).

Exit 0 when the memcoop guest reached the target with Redis alive and no
OOM kill; 1 otherwise.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import hostapps
import mclab

MEM_MIB = 1024
REDIS_MIB = 600
VALUE = 16384        # bytes; small values fragment jemalloc and give little RSS back (docs/memcoop-guestd.md)
KEYSPACE_PCT = 160
SQUEEZE_MIB = 512       # what the operator takes from each guest
GUEST_MIN_MIB = 512     # each guest's lower limit
BEFORE_S = 10
SQUEEZE_WAIT_S = 60
POLICY_S = 40

# memcoop.ko waits relay_deadline_ms (200 by default) for the answers and
# then takes the memory: Redis under TCG needs seconds to evict hundreds of
# MiB, so the driver waits as long as memcoop-guestd's deadline-ms (as the
# apps benchmark's --deadline-ms does).  With the default, one run of this
# demo had Redis OOM-killed in the memcoop guest (status: 1.35 GiB asked in
# all, 45.6 MiB freed).
DEADLINE_MS = 3000
GUESTD_START = r"""
%(carry)s
if command -v memcoop-guestd > /dev/null && [ -c /dev/memcoop ]; then
	echo %(deadline)d > /sys/module/memcoop/parameters/relay_deadline_ms || exit 96
	printf 'socket "/tmp/guestd.sock"\napp redis {\n\ttype redis\n\taddress "127.0.0.1:6379"\n\tfloor 32M\n\tdeadline-ms %(deadline)d\n}\n' > /tmp/guestd.conf
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


def plot(path, series, samples, offsets, events):
    """Per guest over time: target, actual, Redis RSS (MiB), ops/s.  Debian's
    matplotlib; when this interpreter lacks it (a python3 of one's own on
    PATH), Debian's /usr/bin/python3 draws it from a JSON file."""
    data = {"path": path, "series": series, "samples": samples, "offsets": offsets,
            "events": events}
    try:
        import matplotlib   # noqa: F401
    except ImportError:
        if not os.path.exists("/usr/bin/python3") or sys.executable == "/usr/bin/python3":
            raise mclab.LabError("no matplotlib (python3-matplotlib: sh .ci/deps.sh)")
        js = path + ".json"
        with open(js, "w") as f:
            json.dump(data, f)
        r = subprocess.run(["/usr/bin/python3", os.path.abspath(__file__), js])
        os.unlink(js)
        if r.returncode:
            raise mclab.LabError("plotting with /usr/bin/python3 failed")
        return
    _draw(**data)


def _draw(path, series, samples, offsets, events):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(series), 1, figsize=(10, 4 * len(series)), sharex=True)
    for ax, (name, pts) in zip(axes, series.items()):
        t = [p[0] for p in pts]
        ax.plot(t, [p[1] if p[1] else float("nan") for p in pts], label="target (memcoopd)",
                drawstyle="steps-post")
        ax.plot(t, [p[2] for p in pts], label="actual (balloon)")
        smp = samples[name]
        st = [x["t"] + offsets[name] for x in smp]
        ax.plot(st, [x.get("rss_kib", 0) / 1024 for x in smp], label="Redis RSS")
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
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, loc="lower left", fontsize=8)
        for when, what in events:
            ax.axvline(when, color="black", linestyle=":")
            ax.text(when, MEM_MIB, " " + what, fontsize=8, va="top")
    axes[-1].set_xlabel("seconds since memcoopd started")
    axes[-1].set_xlim(left=-BEFORE_S - 5)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


# --image: Debian's images (tests/image/images.py) have no Redis: the
# host's redis-server, redis-cli and redis-benchmark go into the 9p share
# with every library they link, the host's loader included, so that the
# same Redis runs in a Debian 12 and a Debian 13 guest.  systemd has the
# loopback up already, and the images have no ip(8).
IMAGE_REDIS = ["redis-server", "redis-cli", "redis-benchmark"]
IMAGE_PREFIX = r"""
PATH=/mnt/mclab/redis/bin:$PATH
export PATH
command -v ip > /dev/null || ip() { :; }
"""


def share_host_programs(share, progs):
    """@progs (host programs) into @share/redis: libexec/ the binaries, lib/
    what ldd says they link, bin/ wrappers that run them with the host's
    loader on those libraries."""
    top = os.path.join(share, "redis")
    for d in ("bin", "lib", "libexec"):
        os.makedirs(os.path.join(top, d), exist_ok=True)
    loader = None
    for prog in progs:
        path = shutil.which(prog)
        if path is None:
            raise mclab.LabError("no %s on the host (sh .ci/deps.sh)" % prog)
        shutil.copy2(os.path.realpath(path), os.path.join(top, "libexec", prog))
        out = subprocess.run(["ldd", path], capture_output=True, text=True,
                             check=True).stdout
        for lib in re.findall(r"(/\S+) \(0x", out):
            shutil.copy2(os.path.realpath(lib), os.path.join(top, "lib", os.path.basename(lib)))
            if "/ld-linux" in lib:
                loader = os.path.basename(lib)
        with open(os.path.join(top, "bin", prog), "w") as f:
            f.write('#!/bin/sh\nexec /mnt/mclab/redis/lib/%s --library-path '
                    '/mnt/mclab/redis/lib /mnt/mclab/redis/libexec/%s "$@"\n' % (loader, prog))
        os.chmod(os.path.join(top, "bin", prog), 0o755)


def image_packages(builddir):
    """The tree's guest packages (built by debs.py when needed: before any
    guest is prepared, as a build clears the lab's temporary directories)."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), "image"))
    import images
    return images.package_debs(builddir)


def image_guest(image, name, driver, script, builddir, debs):
    """A guest booting Debian image @image: with the tree's guest packages
    (memcoop-dkms: memcoop.ko drives the balloon; memcoop-guestd) for the
    memcoop guest, the plain image (Debian's virtio_balloon) for the stock
    one; the host's Redis from the share."""
    import images
    g = images.prepared_guest(image, debs if driver == "memcoop" else [], IMAGE_PREFIX + script, builddir=builddir,
                              tmp_name="demo-" + name, mem=MEM_MIB, name=name,
                              qmp_extra=True, timeout=600)
    share_host_programs(g.share, IMAGE_REDIS)
    return g


def demo(srcdir, builddir, image=None):
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
        say("== memcoop demo: two %d MiB swapless guests (%s), each with Debian's "
            "redis-server holding %d MiB under redis-benchmark" % (
                MEM_MIB, "Debian image %s, packages installed" % image if image else
                "busybox initramfs", REDIS_MIB))
        fits = REDIS_MIB * 1048576 // (VALUE + 200)
        keys = fits * KEYSPACE_PCT // 100
        scripts = {}
        debs = image_packages(builddir) if image else None
        for name, driver in (("stock", "stock"), ("memcoop", "memcoop")):
            script = hostapps.REDIS_SCRIPT % {
                "maxmem_mib": REDIS_MIB, "keys": keys, "fill_n": fits * 11 // 10,
                "value": VALUE, "before": GUESTD_START % {
                    "carry": "" if image else hostapps.carry_guestd(builddir),
                    "deadline": DEADLINE_MS}
                if driver == "memcoop" else "",
                "after": GUESTD_STOP if driver == "memcoop" else ""}
            # the images' disks (a DKMS build for the memcoop one) are made
            # before either guest boots, so that both start together
            guests[name] = image_guest(image, name, driver, script, builddir, debs) if image \
                else mclab.Guest(mem=MEM_MIB, driver=driver, qmp_extra=True, name=name,
                                 builddir=builddir, timeout=600, host_usr=True)
            scripts[name] = script
        for name, driver in (("stock", "stock"), ("memcoop", "memcoop")):
            g = guests[name]
            g.start(*([] if image else ["eval", scripts[name]]))
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

        with open(conf, "w") as f:
            f.write('socket "%s"\nbackend qmp\ntick 1s\nstats-period 1\nauto yes\n'
                    'guest-reserve 64M\nguest-slack 64M\nstep-max 128M\nhold 10s\n'
                    'ksm unmanaged\nmetrics off\nrestore-on-exit no\n' % sock)
            for name, g in guests.items():
                f.write('guest %s {\n\tqmp "%s"\n\tmode auto\n\tmin %dM\n}\n' % (
                    name, g.qmp_path2, GUEST_MIN_MIB))
        t_start = time.monotonic()
        agent = subprocess.Popen([os.path.join(builddir, "host-agent", "memcoopd"), "-d", "-v",
                                  "-f", conf], stdout=open(log, "w"), stderr=subprocess.STDOUT)
        series = {n: [] for n in guests}

        def watch(seconds, until=None):
            t_end = time.monotonic() + seconds
            while time.monotonic() < t_end:
                rc, out, _ = ctl(builddir, sock, "-j", "status")
                now = time.monotonic() - t_start
                if rc == 0:
                    for x in json.loads(out).get("guests", []):
                        if x["name"] in series and x["state"] == "online":
                            series[x["name"]].append((now, x["target"] >> 20,
                                                      x["actual"] >> 20, x["mode"]))
                if agent.poll() is not None:
                    raise mclab.LabError("memcoopd exited:\n" + open(log).read()[-2000:])
                if until and until():
                    return
                time.sleep(1)

        say("== memcoopd manages both guests, automatic mode, lower limit %d MiB each" %
            GUEST_MIN_MIB)
        watch(BEFORE_S)
        target = MEM_MIB - SQUEEZE_MIB
        say("== squeeze: the operator takes %d MiB from each guest: memcoopctl set GUEST "
            "target %dM" % (SQUEEZE_MIB, target))
        for g in guests.values():
            g.send("squeeze")
        marks = {n: float(g.wait_for(r"MARK squeeze t=([\d.]+)", timeout=30).group(1))
                 for n, g in guests.items()}
        t_squeeze = time.monotonic() - t_start
        for name in guests:
            rc, out, err = ctl(builddir, sock, "set", name, "target", "%dM" % target)
            if rc != 0:
                raise mclab.LabError("memcoopctl set %s failed: %s" % (name, err.strip()))

        def all_reached():
            for name in guests:
                pts = series[name]
                if not pts or pts[-1][2] > target + 4:
                    return False
            return True
        watch(SQUEEZE_WAIT_S, all_reached)
        reached, lowest = {}, {}
        for name in guests:
            lowest[name] = min([p[2] for p in series[name] if p[0] >= t_squeeze],
                               default=-1)
            hit = [p[0] - t_squeeze for p in series[name]
                   if p[0] >= t_squeeze and p[2] <= target + 4]
            reached[name] = hit[0] if hit else None
        watch(5)
        t_auto = time.monotonic() - t_start
        say("== back to automatic: memcoopctl set GUEST mode auto; the policy decides "
            "for %d s" % POLICY_S)
        for name in guests:
            ctl(builddir, sock, "set", name, "mode", "auto")
        watch(POLICY_S)
        text_status = ctl(builddir, sock, "status")[1].rstrip()
        agent.terminate()
        agent.wait(10)
        agent = None

        results = {}
        for name, g in guests.items():
            actual = g.balloon_actual() >> 20 if g.proc.poll() is None else -1
            g.send("stop")
            try:
                rc = g.wait_exit(timeout=180)
            except mclab.LabError as e:
                # a Debian guest squeezed below what it runs on can thrash
                # on its file pages for minutes instead of OOM-killing
                # (the initramfs has no file pages to thrash on)
                # only a timeout: a kernel problem on the console fails the demo
                if not image or not str(e).startswith("timeout"):
                    raise
                rc = None
                say("   %-8s did not finish within 180 s of the end of the run: %s" % (
                    name, str(e).splitlines()[0]))
            out = g.output
            smp = hostapps.samples(out)
            mark = marks[name]
            auto = mark + t_auto - t_squeeze
            before = hostapps.phase(smp, mark - BEFORE_S, mark)
            during = hostapps.phase(smp, mark, auto)
            after = hostapps.phase(smp, auto, auto + POLICY_S + 30)
            first = [s for s in smp if s["t"] < mark and "evicted" in s]
            last = [s for s in smp if "evicted" in s]
            m = re.search(r"^OOM-KILLS (\d+)$", out, re.M)
            if m is None and image:         # the guest never got that far
                m = re.match(r"(\d+)", str(len(re.findall(
                    r"Out of memory: Killed process",
                    open(g.console_path, errors="replace").read()))))
            results[name] = {
                "actual": actual, "exit": rc, "samples": smp,
                "offset": t_squeeze - mark,
                "reached": reached[name],
                "lowest": lowest[name],
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
        say("== report: 'during' is the squeeze to %d MiB, 'after' the %d s of automatic "
            "policy" % (target, POLICY_S))
        say("%-8s %-18s %-8s %-5s %-6s %-26s %-20s %s" % (
            "guest", "reached in", "end", "OOM", "Redis", "ops/s before/during/after",
            "hit % before/dur/aft", "keys before -> end (evicted)"))
        for name, r in results.items():
            b, d, a = r["phases"]
            say("%-8s %-18s %-8s %-5d %-6s %-26s %-20s %.0f -> %.0f (%.0f)" % (
                name, "%.1fs" % r["reached"] if r["reached"] is not None else
                ">%ds (lowest %d)" % (SQUEEZE_WAIT_S, r["lowest"]),
                "%d MiB" % r["actual"], r["oom"], "alive" if r["alive"] else "DEAD",
                "%.0f / %.0f / %.0f" % (b["ops_s"], d["ops_s"], a["ops_s"]),
                "%.0f / %.0f / %.0f" % (100 * b["hit"], 100 * d["hit"], 100 * a["hit"]),
                r["keys_before"], r["keys_end"], r["lost"]))
        png = os.path.join(builddir, "memcoop-demo.png")
        plot(png, series, {n: r["samples"] for n, r in results.items()},
             {n: r["offset"] for n, r in results.items()},
             [(t_squeeze, "operator: target %dM" % target), (t_auto, "mode auto")])
        say("")
        say("plot: %s" % png)
        st = results["stock"]
        ok = mc["oom"] == 0 and mc["alive"] and mc["reached"] is not None
        say("demo: memcoop %s; stock: %s, %d OOM kill(s), Redis %s" % (
            "reached the target with Redis alive and no OOM kill" if ok else
            "did NOT reach the target cleanly",
            "reached" if st["reached"] is not None else "not reached", st["oom"],
            "alive" if st["alive"] else "killed"))
        return 0 if ok else 1
    finally:
        if agent is not None:
            agent.kill()
            agent.wait()
        for g in guests.values():
            g.close()
        subprocess.run(["rm", "-rf", tmp])
        if image:
            mclab.cleanup_tmp()     # the images' overlays and disks


if __name__ == "__main__":     # plot(): drawing with Debian's python3
    with open(sys.argv[1]) as f:
        _draw(**json.load(f))
