#!/usr/bin/env python3
"""The squeeze: stock virtio_balloon against memcoop.ko, same run.

A 1 GiB guest without swap runs memcache-like holding about 600 MiB of
values and serving memcache-load (both from guest-driver/examples/memcache,
started by mcb-squeeze).  After --before seconds of steady load the host
lowers the balloon target by 512 MiB in one QMP `balloon` command and
watches query-balloon until `actual` reaches the target (or --limit
seconds pass), then watches --after seconds more.

Per driver: time to target, OOM kills ("Killed process" on the guest
console), whether the cache survived, the cache's requests/s before,
during and after the squeeze, and notification latencies:
  - callback: kernel timestamp of each shrink request -> the cache's
    callback (CLOCK_MONOTONIC in the guest), p50/p99 over all requests;
  - first callback and first PSI event after the host's mark (a line sent
    to the guest just before the QMP command), i.e. from the host's
    decision to the application being told, by memcoop vs by a PSI
    trigger ("some 1000 500000") on /proc/pressure/memory in the same
    guest.

Prints BENCH lines: value = memcoop, baseline = stock, ratio = how many
times better memcoop is: above 1 favours memcoop (baseline / value for
times and counts; value / baseline for req/s).  Each compares the same
quantity in the two runs: squeeze_notify_first is, from the host's mark,
memcoop's first shrink callback against the first PSI event in the stock
guest (what a stock application could learn).  A run that never got
there (target not reached in --limit s, no PSI event before the end) has
its real figure, ">60.000", and the ratio is then a bound (">2.5").  The
callback latencies (request -> callback) and the config interrupt ->
callback time have no stock counterpart and are printed, not compared.

Exit 0 if both runs completed with memcache-load exiting 0 and no value
coming back corrupt (the numbers are the result); 1 if a run failed, a
value was corrupt, or memcache-load saw errors while the cache lived.

Options: --mem MiB (1024), --take MiB (512), --cache MiB (600),
--value KiB (64), --before s (10), --after s (15), --limit s (60),
--drivers stock,memcoop.
"""
import argparse
import math
import os
import re
import statistics
import sys
import time

import mclab

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchlib import emit  # noqa: E402


def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    f = math.floor(k)
    c = min(f + 1, len(xs) - 1)
    return xs[f] + (xs[c] - xs[f]) * (k - f)


def mean(xs):
    return statistics.mean(xs) if xs else float("nan")


def run(driver, args):
    res = {"driver": driver}
    target = args.mem - args.take
    with mclab.Guest(mem=args.mem, driver=driver, timeout=900, name="squeeze-" + driver) as g:
        # after the run, the driver's counters: config_ns is when the
        # config interrupt with the new target arrived (memcoop.ko only)
        g.start("sh", "-c", "mcb-squeeze %d %d; rc=$?; "
                "cat /sys/kernel/debug/memcoop/balloon 2>/dev/null; exit $rc" % (
                    args.cache, args.value))
        m = g.wait_for(r"FILLED mib=\d+ keys=\d+ secs=([\d.]+)", timeout=600)
        res["fill_s"] = float(m.group(1))
        g.wait_for(r"LOAD t=", timeout=60)
        time.sleep(args.before)

        g.send("squeeze")
        g.wait_for(r"MARK squeeze mono_ns=\d+", timeout=30)
        t0 = time.monotonic()
        g.qmp("balloon", value=target << 20)
        reached = None
        lowest = args.mem
        while time.monotonic() - t0 < args.limit:
            try:
                actual = g.balloon_actual() >> 20
            except (OSError, mclab.QMPError):
                break
            lowest = min(lowest, actual)
            if actual <= target:
                reached = time.monotonic() - t0
                break
            if g.proc.poll() is not None:
                break
            time.sleep(0.02)
        res["reached_s"] = reached
        res["lowest_mib"] = lowest
        time.sleep(args.after)
        g.send("quit")
        try:
            rc = g.wait_exit(timeout=120)
        finally:
            out, con = g.output, g.console
            logdir = os.environ.get("MCLAB_BUILDDIR", ".")
            for kind, text in (("output", out), ("console", con)):
                with open(os.path.join(logdir, "squeeze-%s-%s.log" % (driver, kind)), "w") as f:
                    f.write(text)
    res["rc"] = rc

    mark = int(re.search(r"MARK squeeze mono_ns=(\d+)", out).group(1))
    end_squeeze = mark + int((reached if reached is not None else args.limit) * 1e9)
    before, during, after = [], [], []
    for m in re.finditer(r"LOAD t=[\d.]+ rps=(\d+) .* mono_ns=(\d+)", out):
        rps, t = int(m.group(1)), int(m.group(2))
        if mark - args.before * 1e9 <= t < mark:
            before.append(rps)
        elif mark <= t <= end_squeeze:
            during.append(rps)
        elif end_squeeze < t <= end_squeeze + args.after * 1e9:
            after.append(rps)
    res["rps"] = (mean(before), mean(during), mean(after))

    res["oom_kills"] = len(re.findall(r"Killed process", con))
    res["cache_killed"] = bool(re.search(r"Killed process \d+ \(memcache-like\)", con))

    lat, first_cb, reasons = [], None, {}
    for m in re.finditer(r"SHRINK seq=\d+ reason=(\d+) level=\d+ asked=(\d+) freed=(\d+) "
                         r"latency_us=(\d+) ts_ns=(\d+) cb_ns=(\d+)", out):
        reason, cb = int(m.group(1)), int(m.group(6))
        if cb < mark:
            continue
        lat.append(int(m.group(4)))
        reasons.setdefault(reason, [0, 0, 0])
        reasons[reason][0] += 1
        reasons[reason][1] += int(m.group(2))
        reasons[reason][2] += int(m.group(3))
        if first_cb is None:
            first_cb = (cb - mark) / 1e6
    res["lat_us"] = lat
    res["first_cb_ms"] = first_cb
    cfg = re.search(r"^config_ns (\d+)$", out, re.M)
    res["irq_to_cb_ms"] = (first_cb * 1e6 + mark - int(cfg.group(1))) / 1e6 \
        if cfg and first_cb is not None and int(cfg.group(1)) >= mark else None
    res["reasons"] = reasons
    psi = [int(x) for x in re.findall(r"PSI mono_ns=(\d+)", out)]
    psi_after = [t for t in psi if t >= mark]
    res["first_psi_ms"] = (psi_after[0] - mark) / 1e6 if psi_after else None
    res["psi_events"] = len(psi_after)
    res["psi_note"] = re.search(r"PSI (unavailable.*|trigger .* armed)", out)
    quit_m = re.search(r"MARK quit mono_ns=(\d+)", out)
    res["window_ms"] = (int(quit_m.group(1)) - mark) / 1e6 if quit_m else None
    # memcache-load: its exit status and totals (corrupt values, errors)
    m = re.search(r"^LOAD-(EXIT|KILLED) (\d+)$", out, re.M)
    res["load_exit"] = ("exit %s" % m.group(2) if m.group(1) == "EXIT" else
                        "killed by signal %s" % m.group(2)) if m else "no status"
    m = re.search(r"^DONE ops=(\d+) .*errors=(\d+) corrupt=(\d+)$", out, re.M)
    res["load_errors"] = int(m.group(2)) if m else None
    res["load_corrupt"] = int(m.group(3)) if m else None
    return res


def load_verdict(r):
    """None if memcache-load ended well, else what went wrong."""
    if r["load_exit"] != "exit 0" or r["load_corrupt"] is None:
        return "memcache-load: %s%s" % (r["load_exit"], "" if r["load_corrupt"] is not None
                                        else ", no DONE line")
    if r["load_corrupt"]:
        return "memcache-load: %d corrupt values" % r["load_corrupt"]
    if r["load_errors"] and not r["cache_killed"]:
        return "memcache-load: %d errors while the cache lived" % r["load_errors"]
    return None


def fmt(x, unit=""):
    if x is None:
        return "never"
    if isinstance(x, float) and math.isnan(x):
        return "n/a"
    return ("%.3f" % x if isinstance(x, float) else str(x)) + unit


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mem", type=int, default=1024)
    ap.add_argument("--take", type=int, default=512)
    ap.add_argument("--cache", type=int, default=600)
    ap.add_argument("--value", type=int, default=64)
    ap.add_argument("--before", type=int, default=10)
    ap.add_argument("--after", type=int, default=15)
    ap.add_argument("--limit", type=int, default=60)
    ap.add_argument("--drivers", default="stock,memcoop")
    args = ap.parse_args()
    mclab.install_signal_handlers()

    results = {}
    for d in args.drivers.split(","):
        try:
            r = run(d, args)
        except mclab.LabError as e:
            print("%s: run failed: %s" % (d, e), flush=True)
            return 1
        results[d] = r
        print("%s: memcache-load %s, %s errors, %s corrupt values" % (
            d, r["load_exit"], r["load_errors"], r["load_corrupt"]), flush=True)
        print("%s: fill %.1f s; target %d MiB %s (lowest actual %d MiB); OOM kills %d%s; "
              "rps before/during/after %s/%s/%s" % (
                  d, r["fill_s"], args.mem - args.take,
                  "reached in %.2f s" % r["reached_s"] if r["reached_s"] is not None
                  else "NOT reached in %d s" % args.limit, r["lowest_mib"], r["oom_kills"],
                  " (the cache was killed)" if r["cache_killed"] else "",
                  fmt(r["rps"][0]), fmt(r["rps"][1]), fmt(r["rps"][2])), flush=True)
        for reason, (n, asked, freed) in sorted(r["reasons"].items()):
            print("%s: shrink requests reason %d: %d, %d pages asked, %d freed" % (
                d, reason, n, asked, freed), flush=True)
        if r.get("irq_to_cb_ms") is not None:
            print("%s: config interrupt -> first shrink callback %.3f ms" % (
                d, r["irq_to_cb_ms"]), flush=True)
        print("%s: callback latency p50 %s us p99 %s us over %d requests; first callback "
              "%s ms, first PSI event %s ms after the mark (%d PSI events; %s)" % (
                  d, fmt(percentile(r["lat_us"], 50)), fmt(percentile(r["lat_us"], 99)),
                  len(r["lat_us"]), fmt(r["first_cb_ms"]), fmt(r["first_psi_ms"]),
                  r["psi_events"], r["psi_note"].group(0) if r["psi_note"] else "no PSI line"),
              flush=True)

    if "memcoop" in results and "stock" in results:
        m, s = results["memcoop"], results["stock"]
        emit("squeeze_time_to_target", m["reached_s"], "s", s["reached_s"],
             never=float(args.limit))
        emit("squeeze_oom_kills", m["oom_kills"], "count", s["oom_kills"])
        for i, ph in enumerate(("before", "during", "after")):
            emit("squeeze_rps_" + ph, m["rps"][i], "req/s", s["rps"][i], higher_better=True)
        # the application told, from the host's mark: memcoop's callback
        # against PSI in the stock guest; "never" is the whole observed run
        win = min(x for x in (m["window_ms"], s["window_ms"]) if x is not None) \
            if m["window_ms"] or s["window_ms"] else float("nan")
        emit("squeeze_notify_first", m["first_cb_ms"], "ms", s["first_psi_ms"], never=win)
    bad = [(d, load_verdict(r)) for d, r in results.items() if load_verdict(r)]
    for d, why in bad:
        print("%s: FAIL: %s" % (d, why), flush=True)
    if bad:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
