#!/usr/bin/env python3
"""KSM integration: two guests with identical memory.

1. The user-space estimate (ksm_sample.c) sees the cross-guest duplicates
   before ksmd runs: two guests filled with the same content must show a
   cross-guest saving close to the filled size, one guest alone must not.
2. Auto mode (ksm.c) starts ksmd because the estimate pays, converges,
   backs off, and the saving measured by the kernel (pages_sharing) and
   attributed per guest (/proc/PID/ksm_stat) is reported for both guests.
3. The same through memcoopd (`ksm auto`, QMP backend): from an unmerged
   start, memcoopctl status reports ksmd running and a saving for each of
   the two guests; `memcoopctl ksm off|on|auto` set the real
   /sys/kernel/mm/ksm/run; on SIGTERM memcoopd puts KSM back as it found
   it.
4. Every KSM setting is back to what it was afterwards.  A host whose KSM
   is running already is unmerged and stopped for the test (its other
   users lose their merged pages for a while) and restarted afterwards
   with its own settings.

Exit 0 pass, 1 fail, 77 skip.
Usage: ksm_merge.py KSMDRIVE [MEMCOOPD MEMCOOPCTL]
"""
import json
import os
import subprocess
import sys
import time

import ksmlib
import mclab

KSM = ksmlib.KSM
FILL_MIB = 160


def record(pid_a, pid_b):
    """With KSM_RECORD_DIR set, keep the merged state as unit-test input."""
    d = os.environ.get("KSM_RECORD_DIR")
    if not d:
        return
    os.makedirs(os.path.join(d, "sysfs-merged"), exist_ok=True)
    for name in os.listdir(KSM):
        with open(os.path.join(KSM, name)) as f, \
                open(os.path.join(d, "sysfs-merged", name), "w") as o:
            o.write(f.read())
    for pid, name in ((pid_a, "ksm_stat-qemu.txt"), (pid_b, "ksm_stat-qemu2.txt")):
        with open("/proc/%d/ksm_stat" % pid) as f, open(os.path.join(d, name), "w") as o:
            o.write(f.read())


def ksm_switch(memcoopctl, sock, mode, run):
    """`memcoopctl ksm MODE` must answer with MODE and, for on and off,
    set the host's KSM run to @run at once."""
    r = subprocess.run([memcoopctl, "-s", sock, "--json", "ksm", mode],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        return ["memcoopctl ksm %s: exit %d: %s" % (mode, r.returncode, r.stderr.strip())]
    got = json.loads(r.stdout).get("mode")
    fails = [] if got == mode else ["memcoopctl ksm %s answered mode %s" % (mode, got)]
    if run is not None:
        deadline = time.monotonic() + 10
        while ksmlib.read("run") != run and time.monotonic() < deadline:
            time.sleep(0.2)
        if ksmlib.read("run") != run:
            fails.append("memcoopctl ksm %s: %s/run is %s, not %s" % (
                mode, KSM, ksmlib.read("run"), run))
    print("memcoopctl ksm %s: mode %s, %s/run %s" % (mode, got, KSM, ksmlib.read("run")))
    return fails


def daemon_phase(memcoopd, memcoopctl, guests, fill_pages):
    fails = []
    found = ksmlib.read("run")      # what memcoopd must leave behind
    tmp = mclab.mkdtemp("ksm-merge")
    sock = os.path.join(tmp, "memcoopd.sock")
    conf = os.path.join(tmp, "memcoopd.conf")
    with open(conf, "w") as f:
        f.write('backend qmp\nsocket "%s"\ntick 1s\nauto no\nksm auto\n'
                'metrics off\nstate-dir "%s/state"\n' % (sock, tmp))
        for g in guests:
            f.write('guest %s {\n\tqmp "%s"\n}\n' % (g.name, g.qmp_path2))
    log = open(os.path.join(tmp, "memcoopd.log"), "w")
    proc = subprocess.Popen([memcoopd, "-d", "-f", conf], stdout=log,
                            stderr=subprocess.STDOUT)
    st = None
    try:
        t0 = time.monotonic()
        ok = False
        while time.monotonic() - t0 < 240 and proc.poll() is None:
            time.sleep(2)
            r = subprocess.run([memcoopctl, "-s", sock, "--json", "status"],
                               capture_output=True, text=True)
            if r.returncode != 0:
                continue
            st = json.loads(r.stdout)
            per = [g["ksm_saving"] for g in st["guests"] if g["state"] == "online"]
            if (st["ksm"].get("run") == 1 and len(per) == 2 and
                    min(per) >= 0.3 * fill_pages * 4096):
                ok = True
                break
        r = subprocess.run([memcoopctl, "-s", sock, "ksm", "status"],
                           capture_output=True, text=True)
        print("memcoopctl ksm status (exit %d):\n%s" % (r.returncode, r.stdout))
        if st is not None:
            print("memcoopd: ksm %s; guests %s" % (
                json.dumps(st["ksm"]),
                [(g["name"], g["ksm_saving"] >> 20) for g in st["guests"]]))
        if not ok:
            fails.append("memcoopd (ksm auto) did not report a saving for both guests "
                         "within 240 s")
        if r.returncode != 0:
            fails.append("memcoopctl ksm status exit %d" % r.returncode)
        # the operator's switch, on the real sysfs
        if proc.poll() is None:
            fails += ksm_switch(memcoopctl, sock, "off", "0")
            fails += ksm_switch(memcoopctl, sock, "on", "1")
            fails += ksm_switch(memcoopctl, sock, "auto", None)
    finally:
        ksmlib.stop(proc, 30)
        log.close()
    if proc.returncode != 0:
        fails.append("memcoopd exit status %s" % proc.returncode)
        with open(os.path.join(tmp, "memcoopd.log")) as f:
            print(f.read()[-3000:])
    if ksmlib.read("run") != found:
        fails.append("memcoopd left KSM run=%s (found %s)" % (ksmlib.read("run"), found))
    return fails


def estimate(drive, pids):
    r = subprocess.run([drive, "estimate"] + [str(p) for p in pids],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError("ksmdrive estimate failed: %s" % r.stderr)
    return json.loads(r.stdout)


def main():
    if len(sys.argv) not in (2, 4):
        print(__doc__)
        return 2
    drive = sys.argv[1]
    memcoopd, memcoopctl = (sys.argv[2], sys.argv[3]) if len(sys.argv) == 4 else (None, None)
    if os.geteuid() != 0:
        return mclab.skip("needs root for %s" % KSM)
    if not ksmlib.available():
        return mclab.skip("this kernel has no KSM (%s)" % KSM)
    saved = ksmlib.save()
    fails = []
    drv = None
    if saved.get("run") != "0":
        print("KSM is running (run=%s): unmerged and stopped for the test, "
              "restarted afterwards" % saved["run"])
    try:
        ksmlib.unmerge()
    except (ksmlib.KSMError, OSError) as e:
        print("FAIL: no unmerged start: %s" % e)
        print("restore: %s" % (ksmlib.restore(saved) or "done"))
        return 1
    start = ksmlib.save()   # what ksmdrive and memcoopd must put back
    try:
        with mclab.Guest(mem=384, driver="stock", name="ksm-a", qmp_extra=True) as a, \
                mclab.Guest(mem=384, driver="stock", name="ksm-b", qmp_extra=True) as b:
            for g in (a, b):
                g.start("mct-ksmfill", str(FILL_MIB), "42")
            for g in (a, b):
                g.wait_for(r"KSMFILL READY (\d+)", timeout=180)
            fill_pages = FILL_MIB * 256

            # 1. the estimate, before ksmd has run
            one_a = estimate(drive, [a.qemu_pid])
            one_b = estimate(drive, [b.qemu_pid])
            two = estimate(drive, [a.qemu_pid, b.qemu_pid])
            print("estimate guest a: %s" % one_a)
            print("estimate guest b: %s" % one_b)
            print("estimate both: %s" % two)
            print("estimate cost: %d ms for %d resident pages (%.1f ms/GiB)" % (
                two["elapsed_ms"], two["resident_pages"],
                two["elapsed_ms"] * 262144.0 / max(two["resident_pages"], 1)))
            # Merging both guests saves, beyond what each saves alone, one
            # page per content present in both: at least the filled pages.
            common = two["saving_pages"] - one_a["saving_pages"] - one_b["saving_pages"]
            print("estimated contents common to both guests: %d pages (filled %d)" % (
                common, fill_pages))
            if two["resident_pages"] < 2 * fill_pages:
                fails.append("resident %d < 2 x filled %d" % (two["resident_pages"], 2 * fill_pages))
            if common < 0.85 * fill_pages:
                fails.append("estimated common contents %d pages < 85%% of the %d filled" % (
                    common, fill_pages))
            if two["cross_pages"] < common:
                fails.append("cross-guest estimate %d < common contents %d" % (
                    two["cross_pages"], common))
            if one_a["cross_pages"] != 0 or one_b["cross_pages"] != 0:
                fails.append("one guest alone cannot have cross-guest pages")

            # 2. auto mode on the real ksmd
            env = dict(os.environ, KSMDRIVE_ON_MIB="64", KSMDRIVE_OFF_MIB="16",
                       KSMDRIVE_MIN_ON="600")
            drv = subprocess.Popen([drive, "run", "auto", "240", "1000",
                                    str(a.qemu_pid), str(b.qemu_pid)],
                                   stdout=subprocess.PIPE, text=True, env=env)
            t0 = time.monotonic()
            last = None
            started = None
            steady = None
            for line in drv.stdout:
                st = json.loads(line)
                last = st
                if started is None and st["run"] == 1:
                    started = st["t"]
                    print("auto: ksmd started at %.1fs: %s" % (st["t"], st["reason"]))
                if st["phase"] == "steady" and steady is None:
                    steady = st["t"]
                    print("auto: steady at %.1fs: %s" % (st["t"], st["reason"]))
                if steady is not None and st["saving_bytes"] >= 0.8 * fill_pages * 4096:
                    record(a.qemu_pid, b.qemu_pid)
                    break
                if time.monotonic() - t0 > 220:
                    break
            drv.terminate()
            drv.wait(30)
            if last is None:
                fails.append("ksmdrive printed nothing")
            else:
                print("auto: last status: %s" % json.dumps(last))
                saving = last["saving_bytes"]
                if started is None:
                    fails.append("auto mode never started ksmd")
                if saving < 0.7 * fill_pages * 4096:
                    fails.append("saving %d MiB < 70%% of %d MiB" % (saving >> 20, FILL_MIB))
                per = [gs["saving_bytes"] for gs in last["guests"]]
                for p in per:
                    if p < 0.3 * fill_pages * 4096:
                        fails.append("per-guest saving %d MiB too small" % (p >> 20))
                if sum(per) > saving * 1.05 + (1 << 20):
                    fails.append("per-guest savings %s exceed the total %d" % (per, saving))
                # Other QEMUs on the host may be merged too: compare the
                # estimate with what these two guests were attributed.
                mine = sum(per)
                ratio = last["estimate_bytes"] / max(mine, 1)
                if not 0.6 <= ratio <= 1.5:
                    fails.append("estimate %d MiB vs measured saving %d MiB: ratio %.2f" % (
                        last["estimate_bytes"] >> 20, mine >> 20, ratio))
                print("BENCH ksm-merge saving_mib=%.1f per_guest_mib=%s estimate_mib=%.1f "
                      "estimate/actual=%.2f time_to_steady_s=%s" % (
                          saving / 2**20, [round(p / 2**20, 1) for p in per],
                          last["estimate_bytes"] / 2**20, ratio, steady))

            # 3. through the daemon, from an unmerged start
            if memcoopd is not None:
                ksmlib.unmerge()
                fails += daemon_phase(memcoopd, memcoopctl, (a, b), fill_pages)
            for g in (a, b):
                g.check_console()
    except mclab.LabError as e:
        fails.append("lab: %s" % e)
    except ksmlib.KSMError as e:
        fails.append(str(e))
    finally:
        if drv is not None and drv.poll() is None:
            drv.kill()
            drv.wait()
        fails += ["not put back by ksmdrive/memcoopd: %s" % d
                  for d in ksmlib.differences(start)]
        try:
            # the guests are gone: drop KSM's stale counters
            ksmlib.unmerge()
        except (ksmlib.KSMError, OSError) as e:
            fails.append(str(e))
        fails += ["not restored: %s" % d for d in ksmlib.restore(saved)]
    for f in fails:
        print("FAIL: %s" % f)
    mclab.cleanup_tmp(failed=bool(fails))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    mclab.install_signal_handlers()
    sys.exit(main())
