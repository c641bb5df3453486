#!/usr/bin/env python3
"""Unmodified applications squeezed: stock virtio_balloon against memcoop.ko
+ memcoop-guestd, alternating in one run.

Per application (--apps redis,jvm) and driver, a 1 GiB swapless guest
(--host-usr: Debian's own programs) runs:
  redis: redis-server with maxmemory --redis MiB (allkeys-lru), filled by
         redis-benchmark SETs of --value bytes over a key space --keyspace
         percent of what fits, then served by redis-benchmark (GETs from
         2 clients, SETs from 1) over that key space;
  jvm:   CacheService (tests/bench/apps), a G1 JVM holding an LRU cache of
         --jvm-cache MiB whose heap stays committed after a --jvm-batch MiB
         start-up job, serving the same kind of load itself.
After --before s of load the host lowers the balloon target by --take MiB
in one QMP `balloon` command and watches query-balloon for --limit s,
then --after s more.  With memcoop.ko the guest runs memcoop-guestd with
the application's adapter (redis: maxmemory + MEMORY PURGE; jvm: GC.run
through the attach socket, then the hold: GC.run again while its RSS is over
what the squeeze left it and the guest is short), when the build has it;
without it the run is
labelled "memcoop.ko alone".  memcoop.ko's relay_deadline_ms and the
daemon's deadline-ms are both --deadline-ms: with the driver's default
200 ms, an answer memcoop-guestd may take 3 s for came after the balloon had
taken the memory anyway (337.7 MiB asked, 6.7 MiB freed when the balloon
had taken it: Redis OOM-killed 3.7 s into the squeeze).

Reported per run: time to target (">LIMIT" when not reached), OOM kills
(the guest's dmesg), whether the application is alive at the end, ops/s
and hit rate before/during/after (from the server's own counters), RSS
before and after and "freed alive" (the RSS drop of an application still
alive at the end; a killed one gave nothing back, it was taken), against
the --take MiB asked.  --rounds N alternates stock/memcoop N times per
application; the BENCH lines are the medians.  BENCH: value = memcoop,
baseline = stock, ratio above 1 favours memcoop (benchlib.emit()).

Exit 0 when every run completed (the numbers are the result); 1 when a
run failed (boot, the application never filled, the lab).
"""
import argparse
import os
import re
import statistics
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "lab"))
sys.path.insert(0, os.path.join(here, ".."))
import hostapps             # noqa: E402
import mclab                # noqa: E402
from benchlib import emit  # noqa: E402

GUESTD_START = r"""
%(carry)s
cat > /tmp/guestd.conf <<'MCLAB_EOF'
socket "/tmp/guestd.sock"
%(conf)s
MCLAB_EOF
chmod 600 /tmp/guestd.conf
memcoop-guestd %(debug)s-f /tmp/guestd.conf > /tmp/guestd.log 2>&1 &
gd=$!
sleep 2
memcoop-guestd status -s /tmp/guestd.sock 2>&1 | sed 's/^/GUESTD-STATUS /'
"""
GUESTD_STOP = r"""
memcoop-guestd status -s /tmp/guestd.sock 2>&1 | sed 's/^/GUESTD-STATUS /'
kill $gd 2>/dev/null; wait $gd 2>/dev/null
sed 's/^/GUESTD-LOG /' /tmp/guestd.log
"""
# --trace: MemAvailable every 200 ms and the JVM's -Xlog:gc* file, printed
# at the end (the guestd log gets its debug lines with -d)
TRACE_START = r"""
( while :; do echo "$(cut -d' ' -f1 /proc/uptime) $(date +%T.%N) $(grep MemAvailable /proc/meminfo)"; \
  sleep 0.2; done ) > /tmp/memav.log 2>&1 &
"""
TRACE_STOP = r"""
sed 's/^/MEMAV /' /tmp/memav.log
sed 's/^/GC-LOG /' /tmp/gc.log 2>/dev/null
"""
GUESTD_CONF = {
    "redis": 'app redis {\n\ttype redis\n\taddress "127.0.0.1:6379"\n\tfloor 32M\n\tdeadline-ms %d\n}',
    "jvm": 'app jvm {\n\ttype jvm\n\tpid-file /tmp/java.pid\n\tdeadline-ms %d\n}',
}


def have_guestd(builddir):
    return os.path.exists(os.path.join(builddir, "guest-driver", "guestd", "memcoop-guestd"))


def script(app, driver, args, classes):
    guestd = driver == "memcoop" and args.guestd
    before = GUESTD_START % {"conf": GUESTD_CONF[app] % args.deadline_ms,
                             "debug": "-d " if args.trace else "",
                             "carry": hostapps.carry_guestd(args.builddir)} if guestd else ""
    after = GUESTD_STOP if guestd else ""
    flags = args.jvm_flags
    if args.trace:
        before, after = TRACE_START + before, after + TRACE_STOP
        flags += " -Xlog:gc*,gc+ergo*=debug:file=/tmp/gc.log:uptime"
    if app == "redis":
        fits = args.redis * 1048576 // (args.value + 200)
        keys = fits * args.keyspace // 100
        return hostapps.REDIS_SCRIPT % {"maxmem_mib": args.redis, "keys": keys,
                                        "fill_n": fits * 11 // 10, "value": args.value,
                                        "before": before, "after": after}
    return hostapps.JVM_SCRIPT % {"carry": hostapps.carry(classes), "xmx_mib": args.jvm_xmx,
                                  "cache_mib": args.jvm_cache, "key_pct": args.keyspace,
                                  "batch_mib": args.jvm_batch, "value": args.value,
                                  "jvm_flags": flags,
                                  "before": before, "after": after}


def bracket(smp, t0, t1):
    """[t0, t1) widened to the samples around it: a squeeze that reached its
    target between two samples (a loaded guest samples every 2-5 s) still
    has two, the counters' deltas over the squeeze and a little more."""
    ts = [s["t"] for s in smp]
    lo = max([t for t in ts if t <= t0] or [t0])
    hi = min([t for t in ts if t >= t1] or [t1])
    return lo, hi + 0.001


def run(app, driver, args, classes):
    res = {"app": app, "driver": driver}
    target = args.mem - args.take
    name = "apps-%s-%s" % (app, driver)
    # memcoop.ko waits for the answers as long as memcoop-guestd may take
    mp = {"relay_deadline_ms": args.deadline_ms} if driver == "memcoop" else {}
    with mclab.Guest(mem=args.mem, driver=driver, timeout=900, name=name,
                     host_usr=True, modparams=mp) as g:
        g.start("eval", script(app, driver, args, classes))
        m = g.wait_for(r"FILLED keys=(\d+).* secs=([\d.]+)|Exception in thread.*|"
                       r"Error: .*|Killed", timeout=600)
        if not m.group(0).startswith("FILLED"):
            raise mclab.LabError("%s did not fill: %s" % (app, m.group(0)))
        res["fill_keys"], res["fill_s"] = int(m.group(1)), float(m.group(2))
        g.wait_for(r"SAMPLE t=", timeout=120)
        time.sleep(args.before)
        g.send("squeeze")
        mark = float(g.wait_for(r"MARK squeeze t=([\d.]+)", timeout=60).group(1))
        t0 = time.monotonic()
        g.qmp("balloon", value=target << 20)
        reached, lowest = None, args.mem
        while time.monotonic() - t0 < args.limit and g.proc.poll() is None:
            try:
                actual = g.balloon_actual() >> 20
            except (OSError, mclab.QMPError):
                break
            lowest = min(lowest, actual)
            if actual <= target:
                reached = time.monotonic() - t0
                break
            time.sleep(0.05)
        res["reached_s"], res["lowest_mib"] = reached, lowest
        time.sleep(args.after)
        g.send("quit")
        try:
            res["rc"] = g.wait_exit(timeout=180)
        finally:
            out, con = g.output, g.console
            logdir = os.environ.get("MCLAB_BUILDDIR", ".")
            for kind, text in (("output", out), ("console", con)):
                with open(os.path.join(logdir, "%s-%s.log" % (name, kind)), "w") as f:
                    f.write(text)
    smp = hostapps.samples(out)
    end = mark + (reached if reached is not None else args.limit)
    res["before"] = hostapps.phase(smp, mark - args.before, mark)
    res["during"] = hostapps.phase(smp, *bracket(smp, mark, end))
    res["after"] = hostapps.phase(smp, end, end + args.after + 5)
    res["alive"] = "APP-ALIVE" in out
    for ph in ("before", "during", "after"):
        if res[ph]["n"] == 0 and not res["alive"]:     # killed: it served nothing
            res[ph].update(ops_s=0.0, hit=0.0, rss_mib=0.0)
    m = re.search(r"^OOM-KILLS (\d+)$", out, re.M)
    res["oom_kills"] = int(m.group(1)) if m else -1
    res["killed"] = re.findall(r"^OOM-KILLED .*?Killed process \d+ \((\S+)\)", out, re.M)
    last = smp[-1] if smp else {}
    res["rss_end_mib"] = last.get("rss_kib", 0) / 1024 if res["alive"] else 0.0
    res["freed_alive_mib"] = max(0.0, res["before"]["rss_mib"] - res["rss_end_mib"]) \
        if res["alive"] else 0.0
    res["guestd"] = [l[len("GUESTD-STATUS "):] for l in out.splitlines()
                     if l.startswith("GUESTD-STATUS ")]
    res["guestd_log"] = [l[len("GUESTD-LOG "):] for l in out.splitlines()
                         if l.startswith("GUESTD-LOG ")]
    return res


def show(r, args):
    label = r["driver"] if r["driver"] == "stock" else (
        "memcoop+guestd" if args.guestd else "memcoop.ko alone")
    p = lambda ph: "%.0f ops/s hit %.1f%% rss %.0f MiB" % (   # noqa: E731
        r[ph]["ops_s"], 100 * r[ph]["hit"], r[ph]["rss_mib"])
    print("%s %s: filled %d keys in %.0f s; target %d MiB %s (lowest %d MiB); OOM kills %d%s; "
          "%s %s" % (
              r["app"], label, r["fill_keys"], r["fill_s"], args.mem - args.take,
              "reached in %.2f s" % r["reached_s"] if r["reached_s"] is not None
              else "NOT reached in %d s" % args.limit, r["lowest_mib"], r["oom_kills"],
              " (%s)" % ", ".join(r["killed"]) if r["killed"] else "",
              r["app"], "alive" if r["alive"] else "DEAD"), flush=True)
    for ph in ("before", "during", "after"):
        print("%s %s:   %-6s %s" % (r["app"], label, ph, p(ph)), flush=True)
    print("%s %s:   RSS freed by the live application %.0f MiB of %d MiB asked" % (
        r["app"], label, r["freed_alive_mib"], args.take), flush=True)
    for line in r["guestd"][-3:]:
        print("%s %s:   guestd status: %s" % (r["app"], label, line), flush=True)
    for line in r["guestd_log"][-8:]:
        print("%s %s:   guestd log: %s" % (r["app"], label, line), flush=True)


def med(rs, f):
    xs = [f(r) for r in rs]
    if any(x is None for x in xs):
        return None if sum(x is None for x in xs) * 2 >= len(xs) else \
            statistics.median([x for x in xs if x is not None])
    return statistics.median(xs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mem", type=int, default=1024)
    ap.add_argument("--take", type=int, default=512)
    ap.add_argument("--redis", type=int, default=600, help="Redis maxmemory, MiB")
    ap.add_argument("--value", type=int, default=16384, help="value bytes (small values fragment jemalloc: Redis then gives little RSS back, docs/memcoop-guestd.md)")
    ap.add_argument("--keyspace", type=int, default=160,
                    help="key space, percent of the keys that fit")
    ap.add_argument("--jvm-cache", type=int, default=96)
    ap.add_argument("--jvm-batch", type=int, default=480)
    ap.add_argument("--jvm-xmx", type=int, default=700)
    ap.add_argument("--jvm-flags", default="",
                    help="more java options (default none: an unmodified JVM's heap free "
                    "ratios, 40/70; the adapter lowers them while it holds the JVM)")
    ap.add_argument("--before", type=int, default=10)
    ap.add_argument("--after", type=int, default=20)
    ap.add_argument("--limit", type=int, default=60)
    ap.add_argument("--deadline-ms", type=int, default=5000,
                    help="memcoop-guestd's deadline-ms and memcoop.ko's relay_deadline_ms "
                    "(the guest is TCG: Redis evicts 300 MiB of 16 KiB values in ~0.25 s "
                    "on the host, several s in the guest)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--trace", action="store_true",
                    help="guestd's debug log, MemAvailable every 200 ms, the JVM's -Xlog:gc* "
                    "(MEMAV, GC-LOG lines in the output log)")
    ap.add_argument("--apps", default="redis,jvm")
    ap.add_argument("--drivers", default="stock,memcoop")
    ap.add_argument("--guestd", choices=["auto", "yes", "no"], default="auto")
    args = ap.parse_args()
    mclab.install_signal_handlers()
    missing = hostapps.missing_programs()
    if missing:
        return mclab.skip("missing prerequisite: %s (sh .ci/deps.sh)" % ", ".join(missing))
    builddir = args.builddir = mclab.Lab().builddir
    if args.guestd == "auto":
        args.guestd = have_guestd(builddir)
    elif args.guestd == "yes" and not have_guestd(builddir):
        print("FAIL: --guestd yes but the build has no memcoop-guestd", flush=True)
        return 1
    else:
        args.guestd = args.guestd == "yes"
    tmp = mclab.mkdtemp("apps-bench")
    classes = hostapps.javac([os.path.join(here, "CacheService.java")], tmp)
    results = {}
    for rnd in range(args.rounds):
        for app in args.apps.split(","):
            for d in args.drivers.split(","):
                try:
                    r = run(app, d, args, classes)
                except mclab.LabError as e:
                    print("%s %s round %d: run failed: %s" % (app, d, rnd + 1, e), flush=True)
                    return 1
                results.setdefault((app, d), []).append(r)
                show(r, args)
    print("memcoop side: %s, relay_deadline_ms %d" % (
        "memcoop.ko + memcoop-guestd (deadline-ms %d)" % args.deadline_ms if args.guestd else
        "memcoop.ko alone (this build has no memcoop-guestd)", args.deadline_ms), flush=True)
    for app in args.apps.split(","):
        m, s = results.get((app, "memcoop")), results.get((app, "stock"))
        if not m or not s:
            continue
        pre = "apps_%s_" % app
        emit(pre + "time_to_target", med(m, lambda r: r["reached_s"]), "s",
             med(s, lambda r: r["reached_s"]), never=float(args.limit))
        emit(pre + "oom_kills", med(m, lambda r: r["oom_kills"]), "count",
             med(s, lambda r: r["oom_kills"]))
        emit(pre + "alive", med(m, lambda r: float(r["alive"])), "fraction",
             med(s, lambda r: float(r["alive"])), higher_better=True)
        for ph in ("before", "during", "after"):
            emit(pre + "ops_" + ph, med(m, lambda r: r[ph]["ops_s"]), "ops/s",
                 med(s, lambda r: r[ph]["ops_s"]), higher_better=True)
            emit(pre + "hit_" + ph, med(m, lambda r: r[ph]["hit"]), "fraction",
                 med(s, lambda r: r[ph]["hit"]), higher_better=True)
        emit(pre + "rss_freed_alive", med(m, lambda r: r["freed_alive_mib"]), "MiB",
             med(s, lambda r: r["freed_alive_mib"]), higher_better=True)
    mclab.cleanup_tmp()
    return 0


if __name__ == "__main__":
    sys.exit(main())
