#!/usr/bin/env python3
"""The agent benchmark (meson test --benchmark --suite agent).

Part 1, "squeeze": three guests (memcoop driver) and a host made short
of memory by a host-side hog.  With the hog running, the host floor is set
DEFICIT_MIB above MemAvailable, and the memory comes back from the guests
either through memcoopd (QMP backend, host-floor and host-comfort =
floor + COMFORT_MIB) or, the baseline, through an operator's one-shot even
split: every guest's balloon set at once to give an equal share of what
the host lacks up to the same comfort level (`virsh setmem` on each).
SQUEEZE_ROUNDS rounds of each, alternating on the same guests, balloons
back to full in between.  Measured per round: seconds until host
MemAvailable is back above the floor (for memcoopd this includes
connecting to the guests and their first stats), memory taken from the
guests, guest OOM kills (must be zero).  BENCH lines: the medians,
value = memcoopd, baseline = the split, ratio = baseline / value (above 1
favours memcoopd: less time, less memory taken).

Part 2, "ksm": three guests holding identical memory (mct-ksmfill, same
seed).  KSM at the kernel's default settings (run=1, pages_to_scan=100,
sleep_millisecs=20, no advisor, use_zero_pages=0; smart_scan as the kernel
has it) against memcoop's auto mode (ksm.c through ksmdrive), each for the
same window, from the same unmerged start.  Measured: the saving
attributed to these guests (/proc/PID/ksm_stat: merging pages times the
shared fraction, plus ksm_zero_pages, the pages merged with the zero page
when use_zero_pages is on), CPU seconds per MiB saved, and the time to
reach 90% of the final saving.  CPU is ksmd's (utime+stime of its
/proc/PID/stat) plus, in the auto rounds, everything the KSM controller
itself spent (ksmdrive: the tick loop, the estimator and the per-guest
sampling, all its threads; exact from its rusage at exit): auto mode pays
for its own decisions.  ksmdrive ticks as memcoopd does (every second, the
guests' savings from the tick) and, while steady, writes its status line
only every 15 s (a metrics scrape).  Each round prints the saving and CPU
per MiB so far at BENCH_KSM_POINTS seconds; an auto round, its CPU by
phase (estimate, each converging scan, steady; ksmd and controller).
BENCH_KSM_ROUNDS rounds of each (default 1), alternating which goes first;
the BENCH lines give the medians.  BENCH_KSM_ONLY=default or auto runs one
kind only.  BENCH_KSM_WINDOW: seconds a round (default 3600: the kernel's
defaults reach 90% of their saving after about 140 s, and both sides need
two full scans to merge, so CPU per MiB compares the two only over a
window of many of the defaults' scans; at 120 s the defaults had not
merged at all, and auto passed 4x after about 35 min).
BENCH_KSMDRIVE_OLD=PATH adds rounds of another ksmdrive (an older auto
mode) for a before/after on the same guests; BENCH_KSM_RECORD=DIR keeps
each round's series (seconds, guest saving in pages, full_scans,
pages_scanned), the input of the ksm unit test's recorded run.

The BENCH lines (value = auto, baseline = the kernel's defaults, ratio
above 1 favours auto): agent.ksm.cpu_per_mib (s/MiB over the window),
agent.ksm.t90, agent.ksm.saving, agent.ksm.steady_cpu (s/min over the
last 600 s, or the last third of a shorter window) and
agent.ksm.cpu_per_mib_at_<N>s at each of BENCH_KSM_POINTS (both sides pay
the same merge; the kernel's defaults keep scanning after it, so the
ratio grows with the window: at 30 min it is bounded by the defaults'
CPU over auto's merge alone).  "ksm ..." lines before them
give each round's figures.  Every KSM setting is restored at exit.  Other
QEMUs on the host are merged as well while KSM runs; ksmd CPU is
host-wide, so the CPU figures include them.

Usage: agent_bench.py MEMCOOPD MEMCOOPCTL KSMDRIVE [squeeze|ksm|all]
"""
import json
import os
import resource
import subprocess
import sys
import time

import ksmlib
import mclab

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchlib import emit  # noqa: E402

KSM = ksmlib.KSM
GUEST_MIB = 512
HOG_MIB = 900
DEFICIT_MIB = 400
COMFORT_MIB = 256
SQUEEZE_ROUNDS = int(os.environ.get("BENCH_SQUEEZE_ROUNDS", "2"))
SQUEEZE_LIMIT = 120     # seconds for a round to recover
FILL_MIB = 160
KSM_WINDOW = int(os.environ.get("BENCH_KSM_WINDOW", "3600"))
KSM_ROUNDS = int(os.environ.get("BENCH_KSM_ROUNDS", "1"))
# the end of a round over which its steady CPU rate is taken
TAIL_S = min(600, KSM_WINDOW // 3)
# the kinds of KSM round to run (default all: "default,auto")
KSM_ONLY = os.environ.get("BENCH_KSM_ONLY", "")
# seconds into a round at which the CPU per MiB so far is printed
KSM_POINTS = [int(x) for x in os.environ.get("BENCH_KSM_POINTS",
                                             "60,120,300,600,1200,1800,2400,3000,3600").split(",")]


def meminfo(key):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def oom_kills(g):
    text = g.console
    return text.count("Out of memory") + text.count("oom-kill:")


def start_hog():
    hog = subprocess.Popen([sys.executable, "-c",
                            "import mmap,sys,time\n"
                            "n=%d<<20\nm=mmap.mmap(-1,n)\n"
                            "for i in range(0,n,4096): m[i]=1\n"
                            "print('HOG', flush=True)\ntime.sleep(900)\n" % HOG_MIB],
                           stdout=subprocess.PIPE, text=True)
    hog.stdout.readline()
    return hog


def wait_recovered(t0, floor):
    """Seconds from @t0 until host MemAvailable is at @floor, or None."""
    while time.monotonic() - t0 < SQUEEZE_LIMIT:
        if meminfo("MemAvailable") >= floor:
            return time.monotonic() - t0
        time.sleep(0.25)
    return None


def squeeze_round(kind, guests, memcoopd, tmp, n):
    """One squeeze of the three guests, by memcoopd (kind "agent") or by
    an operator's one-shot even split (kind "split"): every guest set
    down at once by an equal share of what the host lacks up to the same
    comfort level memcoopd aims for (host-comfort), as `virsh setmem` on
    each would.  Returns the figures and the failures."""
    fails = []
    for g in guests:
        g.set_target(GUEST_MIB)
    for g in guests:
        g.wait_actual(GUEST_MIB, timeout=120, tolerance_mib=8)
    time.sleep(3)
    hog = start_hog()
    agent = None
    try:
        # The floor is set from what the host has with the hog, so that
        # other activity on the host before this point cannot void the run.
        avail_h = meminfo("MemAvailable")
        floor = avail_h + DEFICIT_MIB * 2**20
        comfort = floor + COMFORT_MIB * 2**20
        before = sum(g.balloon_actual() for g in guests)
        t0 = time.monotonic()
        if kind == "agent":
            conf = os.path.join(tmp, "memcoopd-%d.conf" % n)
            sock = os.path.join(tmp, "memcoopd-%d.sock" % n)
            with open(conf, "w") as f:
                f.write('backend qmp\nsocket "%s"\ntick 1s\nstats-period 1\nauto yes\n'
                        'ksm unmanaged\nmetrics off\nrestore-on-exit yes\n'
                        'state-dir "%s-state"\n'
                        'host-floor %dM\nhost-comfort %dM\nguest-min 128M\n'
                        'step-max 128M\n' % (sock, sock, floor >> 20, comfort >> 20))
                for i, g in enumerate(guests):
                    f.write('guest bench-sq%d {\n\tqmp "%s"\n}\n' % (i, g.qmp_path2))
            log = open(os.path.join(tmp, "memcoopd-%d.log" % n), "w")
            agent = subprocess.Popen([memcoopd, "-d", "-f", conf], stdout=log,
                                     stderr=subprocess.STDOUT)
        else:
            share = max(0, comfort - meminfo("MemAvailable")) // len(guests)
            for g in guests:
                g.set_target(max(128, (GUEST_MIB * 2**20 - share) >> 20))
        below = meminfo("MemAvailable") < floor
        recovered = wait_recovered(t0, floor)
        taken = (before - sum(g.balloon_actual() for g in guests)) / 2**20
        ooms = sum(oom_kills(g) for g in guests)
        r = {"recover": recovered, "taken": taken, "ooms": ooms}
        print("squeeze %d (%s): MemAvailable %d MiB with a %d MiB hog, floor %d MiB, "
              "below it at the start: %s; recovered after %s s, %.0f MiB taken, "
              "%d OOM kills" % (n, kind, avail_h >> 20, HOG_MIB, floor >> 20, below,
                                "%.1f" % recovered if recovered is not None else "never",
                                taken, ooms))
        if not below:
            fails.append("squeeze %d (%s): host was not below the floor at the start: "
                         "run void" % (n, kind))
        if kind == "agent" and recovered is None:
            fails.append("squeeze %d: host MemAvailable never came back above the floor "
                         "under memcoopd" % n)
        if ooms:
            fails.append("squeeze %d (%s): %d guest OOM kills" % (n, kind, ooms))
        if agent is not None and agent.poll() is not None:
            fails.append("squeeze %d: memcoopd exited (%s)" % (n, agent.returncode))
    finally:
        hog.kill()
        hog.wait()
        if agent is not None:
            ksmlib.stop(agent)
    return r, fails


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def squeeze(memcoopd, memcoopctl):
    """Part 1: SQUEEZE_ROUNDS squeezes by memcoopd and as many by the
    even split, alternating (agent first in odd rounds, split first in
    even ones), on the same three guests."""
    fails = []
    tmp = mclab.mkdtemp("agent-bench")
    guests = []
    res = {"agent": [], "split": []}
    try:
        for i in range(3):
            g = mclab.Guest(mem=GUEST_MIB, driver="memcoop", qmp_extra=True,
                            name="bench-sq%d" % i)
            guests.append(g)
            g.start("sleep", "3600")
        time.sleep(5)
        n = 0
        for rnd in range(SQUEEZE_ROUNDS):
            for kind in (("agent", "split") if rnd % 2 == 0 else ("split", "agent")):
                n += 1
                r, f = squeeze_round(kind, guests, memcoopd, tmp, n)
                res[kind].append(r)
                fails += f
        fails += check_consoles(guests)

        def fig(rs, key):
            xs = [r[key] for r in rs]
            return None if any(x is None for x in xs) else median(xs)

        ra, rs = fig(res["agent"], "recover"), fig(res["split"], "recover")
        ta, ts = fig(res["agent"], "taken"), fig(res["split"], "taken")
        # ratio: above 1 favours memcoopd (baseline / value: less time,
        # less memory taken from the guests)
        emit("agent.squeeze.recover", ra, "s", rs, never=SQUEEZE_LIMIT)
        emit("agent.squeeze.taken", ta, "MiB", ts)
        emit("agent.squeeze.oom_kills", sum(r["ooms"] for r in res["agent"]), "kills",
             sum(r["ooms"] for r in res["split"]), fmt="%d")
    finally:
        for g in guests:
            g.close()
    return fails


def check_consoles(guests):
    """The lab's console check for guests that are still running."""
    fails = []
    for g in guests:
        try:
            g.check_console()
        except mclab.LabError as e:
            fails.append(str(e))
    return fails


def proc_cpu(pid):
    """utime+stime of process @pid (all its threads, live and exited), s."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ksmd_cpu():
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/comm" % pid) as f:
                if f.read().strip() != "ksmd":
                    continue
        except OSError:
            continue
        c = proc_cpu(int(pid))
        if c is not None:
            return c
    return 0.0


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def guest_saving(pids):
    """Saving attributed to @pids: merging pages x sharing/(shared+sharing),
    plus the pages merged with the kernel's zero page (use_zero_pages:
    ksm_zero_pages, which ksm_merging_pages does not count)."""
    shared = ksmlib.pages("pages_shared")
    sharing = ksmlib.pages("pages_sharing")
    merging = zero = 0
    for p in pids:
        with open("/proc/%d/ksm_stat" % p) as f:
            for line in f:
                if line.startswith("ksm_merging_pages"):
                    merging += int(line.split()[1])
                elif line.startswith("ksm_zero_pages"):
                    zero += int(line.split()[1])
    if shared + sharing == 0:
        return zero * 4096
    return (merging * sharing // (shared + sharing) + zero) * 4096


def host_saving():
    """Host-wide saving, bytes: pages_sharing plus ksm_zero_pages."""
    zero = ksmlib.pages("ksm_zero_pages") if os.path.exists(
        os.path.join(KSM, "ksm_zero_pages")) else 0
    return (ksmlib.pages("pages_sharing") + zero) * 4096


def ksm_run(label, pids, start):
    """Run KSM for the window from an unmerged start.  Returns a dict:
    final saving, CPU over the window (ksmd, plus the controller that
    start() returns, if any), time to 90% of the final saving, the CPU
    spent until then, and the CPU rate over the last TAIL_S seconds (what
    it costs once converged)."""
    cpu0 = ksmd_cpu()
    scanned0 = ksmlib.pages("pages_scanned") if os.path.exists(
        os.path.join(KSM, "pages_scanned")) else None
    child0 = children_cpu()
    t0 = time.monotonic()
    proc = start()
    series = []
    agent = 0.0
    while time.monotonic() - t0 < KSM_WINDOW:
        time.sleep(1)
        if proc is not None:
            c = proc_cpu(proc.pid)
            agent = c if c is not None else agent
        ksmd = ksmd_cpu() - cpu0
        series.append((time.monotonic() - t0, guest_saving(pids), ksmd + agent,
                       ksmlib.pages("full_scans"), ksmlib.pages("pages_scanned"),
                       host_saving(), ksmd))
    ksmd = ksmd_cpu() - cpu0
    scanned = ksmlib.pages("pages_scanned") - scanned0 if scanned0 is not None else None
    if proc is not None:
        ksmlib.stop(proc, 30)
        # exact, with what it spent putting KSM back: its rusage
        agent = children_cpu() - child0
    record = os.environ.get("BENCH_KSM_RECORD")
    if record:
        # unit-test input: seconds, guest saving (pages), full_scans, pages_scanned
        with open(os.path.join(record, "series-%s.txt" % label.replace(" ", "-")), "w") as f:
            for t, sv, _c, fs, ps, _h, _k in series:  # noqa
                f.write("%.1f %d %d %d\n" % (t, sv // 4096, fs, ps))
    # ksmd's CPU is host-wide (other QEMUs on the host are scanned and
    # merged too): the host-wide saving and the pages scanned so far are
    # printed beside, for CPU per MiB counted the same way on both sides.
    points = {}     # CPU s per MiB saved so far at each point, once saving
    for pt in KSM_POINTS:
        x = next((x for x in series if x[0] >= pt), None)
        if x is not None and x[1] > 0:
            points[pt] = x[2] / (x[1] / 2**20)
        if x is not None:
            print("ksm %s at %d s: saving %.1f MiB, cpu %.2f s, %s cpu s/MiB; "
                  "host-wide saving %.1f MiB, %s cpu s/MiB; %d pages scanned" % (
                      label, pt, x[1] / 2**20, x[2],
                      "%.4f" % (x[2] / (x[1] / 2**20)) if x[1] else "inf",
                      x[5] / 2**20, "%.4f" % (x[2] / (x[5] / 2**20)) if x[5] else "inf",
                      x[4] - scanned0 if scanned0 is not None else -1))
    print_scans(label, series, scanned0)
    final = series[-1][1] if series else 0
    cpu = ksmd + agent
    at90 = next(((x[0], x[1], x[2]) for x in series if x[1] >= 0.9 * final),
                None) if final else None
    tail = [x for x in series if x[0] >= series[-1][0] - TAIL_S] if series else []
    rate = ((tail[-1][2] - tail[0][2]) / (tail[-1][0] - tail[0][0]) * 60
            if len(tail) > 1 else 0.0)
    r = {"final": final, "cpu": cpu, "ksmd": ksmd, "agent": agent, "scanned": scanned,
         "t90": at90[0] if at90 else None,
         "cpu90": at90[2] if at90 else None, "save90": at90[1] if at90 else 0,
         "rate": rate, "points": points}
    print("ksm %s: final saving %.1f MiB, cpu %.2f s (ksmd %.2f, controller %.2f); "
          "%s pages scanned (ksmd %s us/page); "
          "90%% at %s s after %s s of cpu; last %d s: %.4f cpu s/min" % (
              label, final / 2**20, cpu, ksmd, agent, scanned,
              "%.2f" % (ksmd * 1e6 / scanned) if scanned else "-",
              "%.1f" % r["t90"] if at90 else "-",
              "%.2f" % r["cpu90"] if at90 else "-", TAIL_S, rate))
    return r


def print_scans(label, series, scanned0):
    """ksmd's work by full scan (either kind): when each ended, pages
    scanned, ksmd CPU (host-wide) and the guests' saving gained in it,
    and CPU per MiB gained; the last, unfinished scan as "(partial)"."""
    if not series:
        return
    fs0 = series[0][3]
    start = (0.0, 0, 0.0, fs0, scanned0 or 0, 0, 0.0)
    prev = start
    for i, x in enumerate(series):
        end = i == len(series) - 1
        if x[3] == prev[3] and not end:
            continue
        if x[3] == prev[3] and x[0] == prev[0]:
            break
        gain = (x[1] - prev[1]) / 2**20
        cpu = x[6] - prev[6]
        print("ksm %s scan %d%s: %.1f-%.1f s, %d pages scanned, ksmd %.2f cpu s "
              "(%.2f us/page), saving %+.1f MiB (%s cpu s/MiB)" % (
                  label, x[3] - fs0 if x[3] > prev[3] else x[3] - fs0 + 1,
                  "" if x[3] > prev[3] else " (partial)", prev[0], x[0],
                  x[4] - prev[4], cpu,
                  cpu * 1e6 / (x[4] - prev[4]) if x[4] > prev[4] else 0.0,
                  gain, "%.4f" % (cpu / gain) if gain > 0 else "-"))
        prev = x


def print_phases(kind, ticks):
    """CPU of an auto round by phase, from ksmdrive's ticks: seconds, ksmd
    CPU (host-wide) and the controller's own (its rusage: tick loop,
    estimator and sampler) spent while in each phase; converging split by
    full scan (n-th scan since converging began)."""
    acc = {}
    order = []
    conv0 = None
    for a, b in zip(ticks, ticks[1:]):
        ph = a["phase"]
        if ph == "converging":
            if conv0 is None:
                conv0 = a["full_scans"]
            ph = "converging scan %d" % (a["full_scans"] - conv0 + 1)
        else:
            conv0 = None
        if ph not in acc:
            acc[ph] = [0.0, 0.0, 0.0, 0]
            order.append(ph)
        r = acc[ph]
        r[0] += b["t"] - a["t"]
        r[1] += (b["ksmd_cpu_ms"] - a["ksmd_cpu_ms"]) / 1000
        r[2] += (b["self_cpu_ms"] - a["self_cpu_ms"]) / 1000
    for ph in order:
        r = acc[ph]
        print("%s phase %-20s %7.1f s: ksmd %.2f cpu s, controller %.2f cpu s" % (
            kind, ph, r[0], r[1], r[2]))


def ksm_median(rs):
    """Per-figure medians of rounds @rs (None if a round lacks it)."""
    out = {}
    for key in rs[0]:
        if key == "points":
            continue
        xs = [r[key] for r in rs]
        out[key] = None if any(x is None for x in xs) else median(xs)
    return out


def ksm_report(kinds, res):
    """Print each kind's figures (the medians of its rounds @res[kind]),
    the ratios to the kernel's defaults and the BENCH lines; returns the
    medians by kind."""
    def ratio(x, y):
        return "%.2f" % (x / y) if x is not None and y else "n/a"

    def per_mib(r):
        return r["cpu"] / (r["final"] / 2**20) if r["final"] else None

    med = {}
    for label in kinds:
        rs = res[label]
        cpm = [per_mib(r) for r in rs]
        r = med[label] = ksm_median(rs)
        r["cpm"] = None if None in cpm else median(cpm)
        print("ksm %s summary: rounds=%d window_s=%d saving_mib=%.1f cpu_s=%.2f "
              "ksmd_cpu_s=%.2f agent_cpu_s=%.2f cpu_s_per_mib=%s t90_s=%s "
              "cpu_s_to_t90=%s steady_cpu_s_per_min=%.4f pages_scanned=%s" % (
                  label, len(rs), KSM_WINDOW, r["final"] / 2**20, r["cpu"], r["ksmd"],
                  r["agent"], "%.4f" % r["cpm"] if r["cpm"] is not None else "inf",
                  "%.1f" % r["t90"] if r["t90"] is not None else "n/a",
                  "%.2f" % r["cpu90"] if r["cpu90"] is not None else "n/a", r["rate"],
                  "%d" % r["scanned"] if r["scanned"] is not None else "n/a"))
    d = med.get("default")
    for label in (kinds[1:] if d else []):
        a = med[label]
        # medians of the rounds; ratio below 1 favours auto (less CPU
        # per MiB, sooner); saving above 1 favours auto
        print("ksm ratio %s/default: cpu_per_mib=%s t90=%s saving=%s "
              "cpu_to_t90=%s steady_cpu=%s" % (
                  label, ratio(a["cpm"], d["cpm"]), ratio(a["t90"], d["t90"]),
                  ratio(a["final"], d["final"]), ratio(a["cpu90"], d["cpu90"]),
                  ratio(a["rate"], d["rate"])))
        print("ksm better %s: cpu_per_mib=%sx t90=%sx (goal: 4x, 5x)" % (
            label, ratio(d["cpm"], a["cpm"]), ratio(d["t90"], a["t90"])))
        # the CPU ratio depends on the window (both pay the merge, the
        # kernel's defaults keep scanning): at each point of the rounds
        points = []
        for pt in KSM_POINTS:
            dp = [r["points"].get(pt) for r in res["default"]]
            ap = [r["points"].get(pt) for r in res[label]]
            if None in dp or None in ap or not dp or not ap:
                continue
            print("ksm better %s at %d s: cpu_per_mib=%sx" % (
                label, pt, ratio(median(dp), median(ap))))
            points.append((pt, median(ap), median(dp)))
        # the BENCH lines: value = auto, baseline = the kernel's
        # defaults, ratio above 1 favours auto
        sfx = "" if label == "auto" else "." + label
        emit("agent.ksm.cpu_per_mib" + sfx, a["cpm"], "s/MiB", d["cpm"], fmt="%.5f")
        emit("agent.ksm.t90" + sfx, a["t90"], "s", d["t90"], never=KSM_WINDOW, fmt="%.1f")
        emit("agent.ksm.saving" + sfx, a["final"] / 2**20, "MiB", d["final"] / 2**20,
             higher_better=True, fmt="%.1f")
        emit("agent.ksm.steady_cpu" + sfx, a["rate"], "s/min", d["rate"], fmt="%.4f")
        for pt, av, dv in points:
            emit("agent.ksm.cpu_per_mib_at_%ds%s" % (pt, sfx), av, "s/MiB", dv, fmt="%.5f")
    return med


def ksm_bench(ksmdrive):
    fails = []
    saved = ksmlib.save()
    if saved.get("run") != "0":
        print("KSM is running (run=%s): unmerged and stopped for the benchmark, "
              "restarted afterwards" % saved["run"])
    guests = []
    tmp = mclab.mkdtemp("agent-bench-ksm")
    try:
        for i in range(3):
            g = mclab.Guest(mem=384, driver="stock", name="bench-ksm%d" % i)
            guests.append(g)
            g.start("mct-ksmfill", str(FILL_MIB), "42")
        for g in guests:
            g.wait_for(r"KSMFILL READY", timeout=240)
        pids = [g.qemu_pid for g in guests]
        ksmlib.unmerge()

        def start_default():
            if "advisor_mode" in saved:
                ksmlib.write("advisor_mode", "none")
            if "use_zero_pages" in saved:
                ksmlib.write("use_zero_pages", 0)   # the kernel's default
            ksmlib.write("pages_to_scan", 100)
            ksmlib.write("sleep_millisecs", 20)
            ksmlib.write("run", 1)
            return None

        def start_auto(n, drive, kind):
            log = os.path.join(tmp, "ksmdrive-%s-%d.log" % (kind, n))

            def start():
                return subprocess.Popen([drive, "run", "auto", str(KSM_WINDOW + 30),
                                         "1000"] + [str(p) for p in pids],
                                        stdout=open(log, "w"),
                                        env=dict(os.environ, KSMDRIVE_ON_MIB="64",
                                                 KSMDRIVE_STEADY_LOG_S="15"))
            return start, log

        # BENCH_KSMDRIVE_OLD: another ksmdrive (an older auto mode) in
        # the same rounds, for a before/after on the same guests
        old = os.environ.get("BENCH_KSMDRIVE_OLD")
        kinds = ["default", "auto"] + (["old"] if old else [])
        if KSM_ONLY:
            kinds = [k for k in kinds if k in KSM_ONLY.split(",")]
        res = {k: [] for k in kinds}
        for rnd in range(KSM_ROUNDS):
            for kind in (kinds if rnd % 2 == 0 else kinds[::-1]):
                if kind == "default":
                    res[kind].append(ksm_run("default %d" % rnd, pids, start_default))
                else:
                    start, auto_log = start_auto(rnd, old if kind == "old" else ksmdrive,
                                                 kind)
                    res[kind].append(ksm_run("%s %d" % (kind, rnd), pids, start))
                    # auto mode's decisions, as it logged them
                    with open(auto_log) as f:
                        ticks = [json.loads(line) for line in f]
                    seen = None
                    for st in ticks:
                        if (st["phase"], st["reason"]) != seen:
                            seen = (st["phase"], st["reason"])
                            print("auto t=%.1fs %s: %s" % (st["t"], st["phase"],
                                                           st["reason"]))
                    print_phases(kind, ticks)
                ksmlib.restore(saved)
                ksmlib.unmerge()
        med = ksm_report(kinds, res)
        a = med.get("auto")
        if a and a["final"] < 0.7 * 2 * FILL_MIB * 2**20:
            fails.append("auto saved only %.0f MiB" % (a["final"] / 2**20))
        fails += check_consoles(guests)
    except ksmlib.KSMError as e:
        fails.append(str(e))
    finally:
        for g in guests:
            g.close()
        try:
            ksmlib.unmerge()        # the guests are gone: stale counters
        except (ksmlib.KSMError, OSError) as e:
            fails.append(str(e))
        fails += ["KSM not restored: %s" % x for x in ksmlib.restore(saved)]
    return fails


def main():
    if len(sys.argv) < 4:
        print(__doc__)
        return 2
    memcoopd, memcoopctl, ksmdrive = sys.argv[1:4]
    part = sys.argv[4] if len(sys.argv) > 4 else "all"
    if os.geteuid() != 0:
        return mclab.skip("needs root (a host-side hog, KSM)")
    if part in ("ksm", "all") and not ksmlib.available():
        return mclab.skip("this kernel has no KSM (%s)" % KSM)
    mclab.install_signal_handlers()
    fails = []
    try:
        if part in ("squeeze", "all"):
            fails += squeeze(memcoopd, memcoopctl)
        if part in ("ksm", "all"):
            fails += ksm_bench(ksmdrive)
    except mclab.LabError as e:
        fails.append("lab: %s" % e)
    for f in fails:
        print("FAIL: %s" % f)
    mclab.cleanup_tmp(failed=bool(fails))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    sys.exit(main())
