#!/usr/bin/env python3
"""The agent benchmark (meson test --benchmark --suite agent).

Part 1, "squeeze": three guests (memcoop driver, managed by memcoopd over
QMP) and a host made short of memory by a host-side hog.  With the hog
running, the host floor is set DEFICIT_MIB above MemAvailable, then
memcoopd starts: it has to take DEFICIT_MIB from the guests.  Measured:
seconds from memcoopd's start until host MemAvailable is back above the
floor (this includes connecting to the guests and their first stats),
memory taken from the guests against the deficit, and guest OOM kills
(must be zero).

Part 2, "ksm": three guests holding identical memory (mct-ksmfill, same
seed).  KSM at the kernel's default settings (run=1, pages_to_scan=100,
sleep_millisecs=20, no advisor) against memcoop's auto mode (ksm.c through
ksmdrive), each for the same window, from the same unmerged start.
Measured: the saving attributed to these guests (/proc/PID/ksm_stat), ksmd
CPU seconds per MiB saved, and the time to reach 90% of the final saving.

BENCH lines carry the figures and the auto/default ratios.  Every KSM
setting is restored at exit.  Other QEMUs on the host are merged as well
while KSM runs; ksmd CPU is host-wide, so the CPU figures include them.

Usage: agent_bench.py MEMCOOPD MEMCOOPCTL KSMDRIVE [squeeze|ksm|all]
"""
import json
import os
import signal
import subprocess
import sys
import time

import mclab

KSM = "/sys/kernel/mm/ksm"
GUEST_MIB = 512
HOG_MIB = 900
DEFICIT_MIB = 400
FILL_MIB = 160
KSM_WINDOW = int(os.environ.get("BENCH_KSM_WINDOW", "180"))


def meminfo(key):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def oom_kills(g):
    text = g.console
    return text.count("Out of memory") + text.count("oom-kill:")


def squeeze(memcoopd, memcoopctl):
    fails = []
    tmp = mclab.mkdtemp("agent-bench")
    agent = hog = None
    guests = []
    try:
        for i in range(3):
            g = mclab.Guest(mem=GUEST_MIB, driver="memcoop", qmp_extra=True,
                            name="bench-sq%d" % i)
            guests.append(g)
            g.start("sleep", "3600")
        time.sleep(5)
        avail0 = meminfo("MemAvailable")
        hog = subprocess.Popen([sys.executable, "-c",
                                "import mmap,sys,time\n"
                                "n=%d<<20\nm=mmap.mmap(-1,n)\n"
                                "for i in range(0,n,4096): m[i]=1\n"
                                "print('HOG', flush=True)\ntime.sleep(900)\n" % HOG_MIB],
                               stdout=subprocess.PIPE, text=True)
        hog.stdout.readline()
        # The floor is set from what the host has with the hog, so that other
        # activity on the host before this point cannot void the run.
        avail_h = meminfo("MemAvailable")
        floor = avail_h + DEFICIT_MIB * 2**20
        before = sum(g.balloon_actual() for g in guests)
        conf = os.path.join(tmp, "memcoopd.conf")
        sock = os.path.join(tmp, "memcoopd.sock")
        with open(conf, "w") as f:
            f.write('backend qmp\nsocket "%s"\ntick 1s\nstats-period 1\nauto yes\n'
                    'ksm unmanaged\nmetrics off\nrestore-on-exit yes\n'
                    'host-floor %dM\nhost-comfort %dM\nguest-min 128M\n'
                    'step-max 128M\n' % (sock, floor >> 20, (floor >> 20) + 256))
            for i, g in enumerate(guests):
                f.write('guest bench-sq%d {\n\tqmp "%s"\n}\n' % (i, g.qmp_path2))
        log = open(os.path.join(tmp, "memcoopd.log"), "w")
        t0 = time.monotonic()
        agent = subprocess.Popen([memcoopd, "-d", "-f", conf], stdout=log,
                                 stderr=subprocess.STDOUT)
        below = meminfo("MemAvailable") < floor
        recovered = None
        while time.monotonic() - t0 < 120:
            if meminfo("MemAvailable") >= floor:
                recovered = time.monotonic() - t0
                break
            time.sleep(0.25)
        after = sum(g.balloon_actual() for g in guests)
        taken = (before - after) / 2**20
        ooms = sum(oom_kills(g) for g in guests)
        print("squeeze: MemAvailable %d MiB, %d MiB with a %d MiB hog; floor %d MiB; "
              "below the floor when memcoopd started: %s" % (
                  avail0 >> 20, avail_h >> 20, HOG_MIB, floor >> 20, below))
        if not below:
            fails.append("host was not below the floor at the start: run void")
        print("BENCH agent-squeeze recover_s=%s taken_mib=%.0f deficit_mib=%d "
              "taken/deficit=%.2f oom_kills=%d" % (
                  "%.1f" % recovered if recovered is not None else "never",
                  taken, DEFICIT_MIB, taken / DEFICIT_MIB, ooms))
        if recovered is None:
            fails.append("host MemAvailable never came back above the floor")
        if ooms:
            fails.append("%d guest OOM kills" % ooms)
        if agent.poll() is not None:
            fails.append("memcoopd exited (%s)" % agent.returncode)
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
        if agent is not None and agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(20)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()
        for g in guests:
            g.close()
    return fails


KNOBS = ["run", "pages_to_scan", "sleep_millisecs", "advisor_mode",
         "advisor_target_scan_time", "advisor_max_cpu"]


def knobs():
    out = {}
    for k in KNOBS:
        with open(os.path.join(KSM, k)) as f:
            out[k] = f.read().strip()
    return out


def write(k, v):
    with open(os.path.join(KSM, k), "w") as f:
        f.write(str(v))


def restore(saved):
    mode = saved["advisor_mode"]
    write("advisor_mode", mode[mode.index("[") + 1:mode.index("]")])
    write("advisor_target_scan_time", saved["advisor_target_scan_time"])
    write("advisor_max_cpu", saved["advisor_max_cpu"])
    if "[none]" in mode:
        write("pages_to_scan", saved["pages_to_scan"])
    write("sleep_millisecs", saved["sleep_millisecs"])
    write("run", saved["run"])


def unmerge():
    write("run", 2)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60:
        with open(os.path.join(KSM, "pages_sharing")) as f:
            if int(f.read()) == 0:
                break
        time.sleep(0.5)
    write("run", 0)


def ksmd_cpu():
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/comm" % pid) as f:
                if f.read().strip() != "ksmd":
                    continue
            with open("/proc/%s/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            continue
    return 0.0


def guest_saving(pids):
    """Saving attributed to @pids: merging pages x sharing/(shared+sharing)."""
    with open(os.path.join(KSM, "pages_shared")) as f:
        shared = int(f.read())
    with open(os.path.join(KSM, "pages_sharing")) as f:
        sharing = int(f.read())
    merging = 0
    for p in pids:
        with open("/proc/%d/ksm_stat" % p) as f:
            for line in f:
                if line.startswith("ksm_merging_pages"):
                    merging += int(line.split()[1])
    if shared + sharing == 0:
        return 0
    return merging * sharing // (shared + sharing) * 4096


def ksm_run(label, pids, start):
    """Run KSM for the window from an unmerged start.  Returns a dict:
    final saving, ksmd CPU over the window, time to 90% of the final
    saving, the CPU spent until then, and the CPU rate over the last 30 s
    (what it costs once converged)."""
    cpu0 = ksmd_cpu()
    t0 = time.monotonic()
    proc = start()
    series = []
    while time.monotonic() - t0 < KSM_WINDOW:
        time.sleep(1)
        series.append((time.monotonic() - t0, guest_saving(pids), ksmd_cpu() - cpu0))
    if proc is not None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    final = series[-1][1] if series else 0
    cpu = series[-1][2] if series else 0.0
    at90 = next(((t, sv, c) for t, sv, c in series if sv >= 0.9 * final), None) if final else None
    tail = [x for x in series if x[0] >= series[-1][0] - 30] if series else []
    rate = ((tail[-1][2] - tail[0][2]) / (tail[-1][0] - tail[0][0]) * 60
            if len(tail) > 1 else 0.0)
    r = {"final": final, "cpu": cpu, "t90": at90[0] if at90 else None,
         "cpu90": at90[2] if at90 else None, "save90": at90[1] if at90 else 0,
         "rate": rate}
    print("ksm %s: final saving %.1f MiB, ksmd cpu %.2f s; 90%% at %s s after %s s of cpu; "
          "last 30 s: %.2f cpu s/min" % (
              label, final / 2**20, cpu, "%.1f" % r["t90"] if at90 else "-",
              "%.2f" % r["cpu90"] if at90 else "-", rate))
    return r


def ksm_bench(ksmdrive):
    fails = []
    saved = knobs()
    if saved["run"] != "0":
        print("SKIP ksm part: KSM already running (run=%s)" % saved["run"])
        return fails
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
        unmerge()

        def start_default():
            write("advisor_mode", "none")
            write("pages_to_scan", 100)
            write("sleep_millisecs", 20)
            write("run", 1)
            return None
        d = ksm_run("default", pids, start_default)
        restore(saved)
        unmerge()

        def start_auto():
            return subprocess.Popen([ksmdrive, "run", "auto", str(KSM_WINDOW + 30), "1000"]
                                    + [str(p) for p in pids],
                                    stdout=open(auto_log, "w"),
                                    env=dict(os.environ, KSMDRIVE_ON_MIB="64"))
        auto_log = os.path.join(tmp, "ksmdrive.log")
        a = ksm_run("auto", pids, start_auto)
        # auto mode's decisions, as it logged them
        with open(auto_log) as f:
            seen = None
            for line in f:
                st = json.loads(line)
                if (st["phase"], st["reason"]) != seen:
                    seen = (st["phase"], st["reason"])
                    print("auto t=%.1fs %s: %s" % (st["t"], st["phase"], st["reason"]))

        def ratio(x, y):
            return "%.2f" % (x / y) if x is not None and y else "n/a"

        for label, r in (("default", d), ("auto", a)):
            print("BENCH agent-ksm-%s window_s=%d saving_mib=%.1f ksmd_cpu_s=%.2f "
                  "cpu_s_per_mib=%.4f t90_s=%s cpu_s_to_t90=%s steady_cpu_s_per_min=%.2f" % (
                      label, KSM_WINDOW, r["final"] / 2**20, r["cpu"],
                      r["cpu"] / (r["final"] / 2**20) if r["final"] else float("inf"),
                      "%.1f" % r["t90"] if r["t90"] is not None else "n/a",
                      "%.2f" % r["cpu90"] if r["cpu90"] is not None else "n/a", r["rate"]))
        cpm_d = d["cpu"] / (d["final"] / 2**20) if d["final"] else None
        cpm_a = a["cpu"] / (a["final"] / 2**20) if a["final"] else None
        print("BENCH agent-ksm ratio auto/default: cpu_per_mib=%s t90=%s saving=%s "
              "cpu_to_t90=%s steady_cpu=%s" % (
                  ratio(cpm_a, cpm_d), ratio(a["t90"], d["t90"]),
                  ratio(a["final"], d["final"]), ratio(a["cpu90"], d["cpu90"]),
                  ratio(a["rate"], d["rate"])))
        if a["final"] < 0.7 * 2 * FILL_MIB * 2**20:
            fails.append("auto saved only %.0f MiB" % (a["final"] / 2**20))
    finally:
        for g in guests:
            g.close()
        restore(saved)
        if saved["run"] == "0":
            unmerge()
    return fails


def main():
    if len(sys.argv) < 4:
        print(__doc__)
        return 2
    memcoopd, memcoopctl, ksmdrive = sys.argv[1:4]
    part = sys.argv[4] if len(sys.argv) > 4 else "all"
    if os.geteuid() != 0:
        print("SKIP: needs root")
        return 77
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
