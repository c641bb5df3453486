#!/usr/bin/env python3
"""Balloon tests driven over QMP against stock QEMU, one per argument:

  follow     the balloon follows `balloon` down and up; query-balloon,
             the driver's size and MemTotal agree at every step; requests
             carry whole batches of the documented 16384 PFNs
  stats      guest-stats: every standard tag sent by the guest (QEMU shows
             2^64-1 for a tag it never got), the event counters equal to
             the guest's /proc/vmstat, values plausible, free memory falls
             when a guest program allocates
  oom        deflate-on-oom: a program that needs more than is left gets
             memory from the balloon instead of an OOM kill
  reporting  free page reporting: QEMU's RSS falls after a guest program
             frees a large allocation
  unload     rmmod with an inflated balloon gives every page back and
             tells the host; insmod inflates again
  cycles     50 rmmod/insmod cycles with an inflated balloon leave MemTotal
             and MemFree where they were
  hostile    targets above RAM, zero, "everything", and 100 target changes
             a second for 10 s with memory pressure in the guest
  suspend    freeze/restore (pm_test=devices) with an inflated balloon
  hint       free page hinting during a migration to /dev/null
  migrate    page migration of balloon pages (memory blocks offlined)
  unplug     device_del of the balloon while it holds 512 MiB: the guest
             gets its memory back, the driver unbinds cleanly, a new
             balloon device binds and inflates

balloon_qmp.py [--smp N] TEST: guests with N CPUs (default 1).
"""
import random
import re
import sys
import time

import balloonlib as bl
import debugkernel

MEM = 1024                      # MiB, every test
HINT_BLOCK_KIB = 4096           # one hint block: an order-10 page, every x86 kernel
PAGES_PER_MIB = 256


def follow(c):
    with bl.AgentGuest(mem=MEM, timeout=600) as g:
        g.boot()
        total0, free0, _ = g.meminfo()
        c.require(g.balloon_actual() == MEM << 20, "actual is all of RAM at boot")
        steps = {"inflate": [], "deflate": []}
        prev = MEM
        for target in (768, 384, 896, 512, 1024):
            steps["inflate" if target < prev else "deflate"].append(
                abs(prev - target) * PAGES_PER_MIB)
            prev = target
            g.set_target(target)
            secs = bl.wait_actual(g, target, timeout=180)
            cnt = g.counters()
            total, free, _ = g.meminfo()
            balloon = MEM - target
            c.check(cnt["size_pages"] == balloon * PAGES_PER_MIB,
                    "target %d MiB reached in %.2f s; driver size %d pages, want %d" % (
                        target, secs, cnt["size_pages"], balloon * PAGES_PER_MIB))
            c.check(total == total0 - balloon * 1024,
                    "MemTotal %d KiB = %d - %d MiB ballooned" % (total, total0, balloon))
        cnt = g.settled_counters()
        c.check(cnt["inflated_pages"] == cnt["deflated_pages"] and cnt["inflated_pages"] > 0,
                "inflated %d == deflated %d pages" % (cnt["inflated_pages"],
                                                      cnt["deflated_pages"]))
        # Batching: each step moves at least 256 MiB, i.e. several whole
        # batches; a driver that sends short requests (stock: 256 PFNs)
        # needs many more than ceil(step / batch) per step.
        batch = cnt["batch_pfns"]
        c.check(batch == 16384, "batch of %d PFNs (batch_pages default 16384)" % batch)
        for d in ("inflate", "deflate"):
            need = sum(-(-s // batch) for s in steps[d])
            c.check(need <= cnt[d + "_requests"] <= need + len(steps[d]),
                    "%d %s requests for %d pages in %d steps (whole batches: %d)" % (
                        cnt[d + "_requests"], d, sum(steps[d]), len(steps[d]), need))
        c.check(cnt["alloc_failures"] == 0, "no allocation failure with free memory")
        c.check(cnt["reclaim_requests"] == 0,
                "no reclaim request while free memory covers the target")
        # the driver offers PAGE_POISON when the kernel poisons free pages:
        # Debian's kernels (PAGE_POISONING=y, booted with page_poison=1) do,
        # the lab's debug kernel (no PAGE_POISONING) does not
        poison = debugkernel.config_option(g.lab.kernel_version(), "CONFIG_PAGE_POISONING")
        if poison in (None, "y"):
            c.check(cnt["features"] & (1 << 4), "PAGE_POISON negotiated (page_poison=1)")
        else:
            c.check(not cnt["features"] & (1 << 4),
                    "PAGE_POISON not negotiated (kernel without PAGE_POISONING)")
        # QEMU throttles BALLOON_CHANGE to one a second: the last may lag
        def last_event():
            ev = [e for e in g.events if e.get("event") == "BALLOON_CHANGE"]
            return ev if ev and ev[-1]["data"]["actual"] == MEM << 20 else None
        ev = bl.wait_until(last_event, 5) or []
        c.check(ev,
                "BALLOON_CHANGE events, the last one at full RAM (%d events)" % len(ev))
        c.check(g.finish() == 0, "guest program exits cleanly, console clean")


STAT_KEYS = ["stat-swap-in", "stat-swap-out", "stat-major-faults", "stat-minor-faults",
             "stat-free-memory", "stat-total-memory", "stat-available-memory",
             "stat-disk-caches", "stat-htlb-pgalloc", "stat-htlb-pgfail"]
# QEMU's value for a tag the guest never sent
UNSET = (1 << 64) - 1
# event counters: the stats tag, its /proc/vmstat counter, bytes per unit
STAT_EVENTS = [("stat-swap-in", "pswpin", 4096), ("stat-swap-out", "pswpout", 4096),
               ("stat-major-faults", "pgmajfault", 1), ("stat-minor-faults", "pgfault", 1),
               ("stat-htlb-pgalloc", "htlb_buddy_alloc_success", 1),
               ("stat-htlb-pgfail", "htlb_buddy_alloc_fail", 1)]
HUGEPAGES = 8


def stats(c):
    path = "/machine/peripheral/balloon0"
    with bl.AgentGuest(mem=MEM, timeout=600) as g:
        g.boot()
        # hugetlb allocations, so that htlb_pgalloc is not zero
        ans, _ = g.cmd("sh echo %d > /proc/sys/vm/nr_hugepages" % HUGEPAGES)
        c.require(ans == "0", "%d huge pages allocated" % HUGEPAGES)
        g.qmp("qom-set", path=path, property="guest-stats-polling-interval", value=1)

        def fresh(after):
            def get():
                s = g.qmp("qom-get", path=path, property="guest-stats")
                return s if s["last-update"] > after else None
            return bl.wait_until(get, 30)

        # The counters only grow: the stats must lie between the guest's
        # /proc/vmstat read before them and the one read after.
        vm0 = g.counters("vmstat")
        t_vm0 = int(time.time())
        s0 = fresh(t_vm0 + 1)
        c.require(s0 is not None, "guest-stats updated within 30 s")
        vm1 = g.counters("vmstat")
        st = s0["stats"]
        for k in STAT_KEYS:
            c.check(k in st and st[k] != UNSET, "the guest sent %s: %s" % (k, st.get(k)))
        for k, vk, unit in STAT_EVENTS:
            lo, hi = vm0[vk] * unit, vm1[vk] * unit
            c.check(lo <= st[k] <= hi, "%s %d within /proc/vmstat %s: %d..%d" % (
                k, st[k], vk, lo, hi))
        c.check(st["stat-htlb-pgalloc"] >= HUGEPAGES, "htlb_pgalloc counts the %d huge pages "
                "(%d)" % (HUGEPAGES, st["stat-htlb-pgalloc"]))
        g.cmd("sh echo 0 > /proc/sys/vm/nr_hugepages")
        total, free, avail = g.meminfo()
        c.check(st["stat-total-memory"] == total * 1024,
                "total %d = MemTotal %d KiB" % (st["stat-total-memory"], total))
        c.check(0 < st["stat-free-memory"] <= st["stat-total-memory"], "0 < free <= total")
        c.check(0 < st["stat-available-memory"] <= st["stat-total-memory"],
                "0 < available <= total")
        c.check(st["stat-minor-faults"] > 100, "minor faults counted (%d)" %
                st["stat-minor-faults"])
        c.check(st["stat-disk-caches"] > 0, "disk caches (initramfs) %d" %
                st["stat-disk-caches"])
        g.cmd("alloc 300")
        s1 = fresh(s0["last-update"] + 1)
        c.require(s1 is not None, "stats updated after the allocation")
        drop = (st["stat-free-memory"] - s1["stats"]["stat-free-memory"]) >> 20
        c.check(drop >= 250, "free memory fell by %d MiB after a 300 MiB allocation" % drop)
        faults = s1["stats"]["stat-minor-faults"] - st["stat-minor-faults"]
        # at least one fault per 2 MiB (transparent huge pages)
        c.check(faults >= 150, "minor faults rose by %d (>= 150)" % faults)
        g.cmd("free")
        s2 = fresh(s1["last-update"] + 1)
        c.require(s2 is not None, "stats updated after the free")
        rise = (s2["stats"]["stat-free-memory"] - s1["stats"]["stat-free-memory"]) >> 20
        c.check(rise >= 250, "free memory rose by %d MiB after the free" % rise)
        c.check(g.counters()["stats_requests"] >= 3, "driver counted stats requests")
        c.check(g.finish() == 0, "guest program exits cleanly, console clean")


def deep_balloon(g, total0):
    """A deep balloon, in MiB, for a guest whose MemTotal was @total0 KiB
    at boot: 768 MiB, which leaves 192 MiB of MemTotal on Debian's kernels
    (960 MiB on 6.1).  KASAN's shadow takes 1/8 of RAM off MemTotal (820
    MiB on the debug kernel), where 768 MiB left 100 MiB and the guest
    panicked ("Out of memory and no killable processes"): there, all but
    the same 192 MiB."""
    if debugkernel.has_kasan(g.lab.kernel_version()):
        return total0 // 1024 - 192
    return 768


def oom(c):
    with bl.AgentGuest(mem=MEM, balloon_opts={"deflate-on-oom": "on"}, timeout=900) as g:
        g.boot()
        total0, _, _ = g.meminfo()
        balloon = deep_balloon(g, total0)
        g.set_target(MEM - balloon)
        bl.wait_actual(g, MEM - balloon, timeout=180)
        cnt = g.counters()
        total, free, _ = g.meminfo()
        c.check(cnt["managed_adjusted"] == 0 and total == total0,
                "DEFLATE_ON_OOM: MemTotal unchanged (%d KiB)" % total)
        print("free before the allocation: %d MiB" % (free >> 10), flush=True)
        t0 = time.monotonic()
        g.cmd("alloc 450", timeout=600)
        print("450 MiB allocated in %.1f s" % (time.monotonic() - t0), flush=True)
        cnt = g.counters()
        c.check(cnt["oom_events"] > 0 and cnt["oom_deflated_pages"] > 0,
                "balloon gave %d pages back in %d OOM notifications" % (
                    cnt["oom_deflated_pages"], cnt["oom_events"]))
        c.check(cnt["size_pages"] == balloon * PAGES_PER_MIB - cnt["oom_deflated_pages"],
                "balloon size %d = %d MiB - OOM deflations" % (cnt["size_pages"], balloon))
        actual = g.balloon_actual() >> 20
        c.check(actual > MEM - balloon, "host sees the deflation: actual %d MiB" % actual)
        c.check("Killed process" not in g.console, "no OOM kill")
        g.cmd("free")
        g.set_target(MEM)
        bl.wait_actual(g, MEM, timeout=180)
        c.check(g.finish() == 0, "program survived, console clean")


def reporting(c):
    # page_poison=0: QEMU ignores reports from a guest that poisons free pages
    with bl.AgentGuest(mem=MEM, balloon_opts={"free-page-reporting": "on"},
                       append="page_poison=0", timeout=600) as g:
        g.boot()
        cnt = g.counters()
        c.require(cnt["features"] & (1 << 5), "REPORTING negotiated (features 0x%x)" %
                  cnt["features"])
        rss0 = g.qemu_rss_kib() >> 10
        g.cmd("alloc 600")
        rss1 = g.qemu_rss_kib() >> 10
        c.check(rss1 >= rss0 + 500, "QEMU RSS %d -> %d MiB after a 600 MiB allocation" % (
            rss0, rss1))
        g.cmd("free")
        t0 = time.monotonic()
        rss2 = bl.wait_until(lambda: (lambda r: r if r <= rss1 - 400 else None)(
            g.qemu_rss_kib() >> 10), 90, step=0.5)
        c.check(rss2 is not None, "QEMU RSS fell by >= 400 MiB after the free (%s MiB, "
                "%.1f s)" % (rss2 if rss2 else g.qemu_rss_kib() >> 10, time.monotonic() - t0))
        cnt = g.counters()
        c.check(cnt["reported_pages"] >= 400 * PAGES_PER_MIB,
                "driver reported %d pages free in %d reports" % (
                    cnt["reported_pages"], cnt["report_requests"]))
        c.check(g.finish() == 0, "guest program exits cleanly, console clean")


def inflate_512(c, g):
    """Boot, inflate by 512 MiB; (MemTotal, free KiB) from before."""
    g.boot()
    total0, _, _ = g.meminfo()
    free0 = g.free_kib()
    g.set_target(512)
    bl.wait_actual(g, 512, timeout=180)
    total, _, _ = g.meminfo()
    c.require(total == total0 - 512 * 1024, "inflated: MemTotal %d KiB" % total)
    return total0, free0


def check_given_back(c, g, total0, free0):
    """MemTotal and free memory as before the inflation.  The deflated
    pages land on the per-cpu lists, which MemFree leaves out (24 MiB of
    them on 2 vCPUs): free_kib() counts them."""
    total, _, _ = g.meminfo()
    free = g.free_kib()
    c.check(total == total0, "MemTotal back to %d KiB (%d)" % (total0, total))
    c.check(free >= free0 - 16 * 1024, "free memory back (MemFree + per-cpu lists): "
            "%d KiB (at boot %d)" % (free, free0))


def unload(c):
    with bl.AgentGuest(mem=MEM, timeout=600) as g:
        total0, free0 = inflate_512(c, g)
        ans, _ = g.cmd("rmmod")
        c.require(ans == "0", "rmmod memcoop with 512 MiB in the balloon")
        check_given_back(c, g, total0, free0)
        back = bl.wait_until(lambda: g.balloon_actual() == MEM << 20, 10)
        c.check(back, "query-balloon actual back to %d MiB (%d)" % (
            MEM, g.balloon_actual() >> 20))
        ans, _ = g.cmd("insmod")
        c.require(ans == "0", "insmod memcoop again")
        bl.wait_actual(g, 512, timeout=180)
        total, _, _ = g.meminfo()
        c.check(total == total0 - 512 * 1024, "reloaded driver inflated to the target again")
        g.set_target(MEM)
        bl.wait_actual(g, MEM, timeout=180)
        c.check(g.finish() == 0, "guest program exits cleanly, console clean")


def cycles(c):
    n = 50
    with bl.AgentGuest(mem=MEM, timeout=1800) as g:
        g.start("mct-balloon", "cycles", str(n))
        g.wait_for(r"WAITING TARGET", timeout=120)
        g.set_target(MEM - 128)
        rc = g.wait_exit(timeout=1500, stream=lambda s: print(s, end="", flush=True))
        c.check(rc == 0, "%d load/unload cycles" % n)


def hostile(c):
    with bl.AgentGuest(mem=MEM, balloon_opts={"deflate-on-oom": "on"}, timeout=900) as g:
        g.boot()
        # above RAM: QEMU clamps to RAM, the balloon stays empty
        g.set_target(2 * MEM)
        time.sleep(2)
        c.check(g.balloon_actual() == MEM << 20 and g.counters()["size_pages"] == 0,
                "target above RAM: balloon empty")
        # zero: QEMU refuses it; the guest does not notice
        try:
            g.qmp("balloon", value=0)
            c.check(False, "QEMU refused a zero target")
        except bl.mclab.QMPError as e:
            c.check(True, "QEMU refused a zero target (%s)" % e)
        c.check(g.counters()["size_pages"] == 0, "balloon still empty")

        # "everything": the guest cannot give it; the driver backs off.
        # 700 MiB on Debian's kernels (MemTotal 960 MiB on 6.1); KASAN's
        # shadow takes 1/8 of RAM off MemTotal (806 MiB on the debug
        # kernel): there, all but the same 260 MiB of MemTotal
        want = 700
        if debugkernel.has_kasan(g.lab.kernel_version()):
            want = g.meminfo()[0] // 1024 - 260
        g.qmp("balloon", value=1 << 20)
        time.sleep(20)
        cnt = g.counters()
        c.check(cnt["size_pages"] > want * PAGES_PER_MIB,
                "took what it could: %d MiB (more than %d)" % (
                    cnt["size_pages"] // PAGES_PER_MIB, want))
        c.check(cnt["reclaim_requests"] >= 1,
                "asked the relay for memory (%d requests, %d pages freed)" % (
                    cnt["reclaim_requests"], cnt["reclaim_pages"]))
        c.check(cnt["alloc_failures"] > 0 and cnt["backoffs"] > 0,
                "says so: %d allocation failures, %d backoffs, backoff now %d ms" % (
                    cnt["alloc_failures"], cnt["backoffs"], cnt["backoff_ms"]))
        b0, i0 = g.cpu()
        time.sleep(10)
        b1, i1 = g.cpu()
        cnt2 = g.counters()
        busy = (b1 - b0) / max((b1 - b0) + (i1 - i0), 1e-9)
        c.check(busy < 0.5, "no busy loop while backing off: guest CPU %.0f%% busy" %
                (busy * 100))
        c.check(cnt2["backoffs"] - cnt["backoffs"] <= 20,
                "%d retries in 10 s" % (cnt2["backoffs"] - cnt["backoffs"]))
        g.set_target(MEM)
        bl.wait_actual(g, MEM, timeout=180)
        c.check(g.counters()["size_pages"] == 0, "gave everything back")

        # 100 target changes a second for 10 s, under memory pressure
        g.cmd("pressure 200")
        rnd = random.Random(1)
        t0 = time.monotonic()
        sent = 0
        while time.monotonic() - t0 < 10:
            g.set_target(rnd.randint(384, MEM))
            sent += 1
            nxt = t0 + sent * 0.01
            d = nxt - time.monotonic()
            if d > 0:
                time.sleep(d)
        rate = sent / (time.monotonic() - t0)
        c.check(rate >= 50, "%d target changes in 10 s (%.0f/s)" % (sent, rate))
        g.set_target(MEM)
        secs = bl.wait_actual(g, MEM, timeout=180)     # raises if not
        print("info: back to full RAM %.1f s after the storm" % secs, flush=True)
        ans, _ = g.cmd("pressure-stop")
        c.check(int(ans) > 0, "the pressure program lived through it (%s rounds)" % ans)
        cnt = g.settled_counters()
        c.check(cnt["size_pages"] == 0 and cnt["inflated_pages"] == cnt["deflated_pages"],
                "balloon empty, inflated %d == deflated %d" % (
                    cnt["inflated_pages"], cnt["deflated_pages"]))
        total, _, _ = g.meminfo()
        c.check(g.finish() == 0, "guest program exits cleanly, console clean")


def suspend(c):
    """A suspend cycle (pm_test=devices: the driver's freeze and restore
    run, the machine does not sleep) with an inflated balloon, and free
    page reporting on (stopped across the freeze, running after it)."""
    with bl.AgentGuest(mem=MEM, balloon_opts={"free-page-reporting": "on"},
                       append="page_poison=0", timeout=600) as g:
        g.boot()
        total0, _, _ = g.meminfo()
        g.set_target(512)
        bl.wait_actual(g, 512, timeout=180)
        before = g.counters()
        ans, _ = g.cmd("sh echo devices > /sys/power/pm_test && "
                       "echo freeze > /sys/power/state", timeout=120)
        c.require(ans == "0", "suspend/resume cycle (pm_test=devices) ran")
        ans, _ = g.cmd("sh dmesg | grep -q 'PM: suspend exit'")
        c.check(ans == "0", "the kernel went through suspend and resume (dmesg)")
        secs = bl.wait_actual(g, 512, timeout=180)
        after = g.counters()
        c.check(after["deflated_pages"] - before["deflated_pages"] == 512 * PAGES_PER_MIB,
                "freeze gave the 512 MiB back (%d pages)" % (
                    after["deflated_pages"] - before["deflated_pages"]))
        c.check(after["inflated_pages"] - before["inflated_pages"] == 512 * PAGES_PER_MIB,
                "restore inflated to the target again (%.1f s)" % secs)
        total, _, avail = g.meminfo()
        c.check(total == total0 - 512 * 1024, "MemTotal consistent: %d KiB" % total)
        rep0 = after["reported_pages"]
        # 200 MiB, or half of what is available: the debug kernel (KASAN's
        # shadow, two CPUs' worth of debug objects) had less than 200 MiB
        # left beside the 512 MiB balloon and OOM-killed the program
        g.cmd("alloc %d" % min(200, avail // 2048))
        g.cmd("free")
        rep = bl.wait_until(lambda: g.counters()["reported_pages"] > rep0, 60, step=1)
        c.check(rep, "free page reporting works after the resume")
        g.set_target(MEM)
        bl.wait_actual(g, MEM, timeout=180)
        c.check(g.finish() == 0, "guest program exits cleanly, console clean")


def hint(c):
    """Free page hinting: a migration (to /dev/null) makes QEMU ask for
    hints; the driver lends it free blocks and takes them back when done."""
    # QEMU wants an iothread for hinting (the lab makes the one named).
    # Not hot-plugged: the lab's guests route PCI interrupts from the MP
    # table (acpi=noirq), which has no entry for a slot empty at boot.
    with bl.AgentGuest(mem=MEM, timeout=600,
                       balloon_opts={"free-page-hint": "on", "iothread": "mcio0"}) as g:
        g.boot()
        cnt = g.counters()
        c.require(cnt["features"] & (1 << 3), "FREE_PAGE_HINT negotiated")
        _, free0, _ = g.meminfo()
        # Each migration is one hint command.  A guest on a loaded host may
        # be scheduled only after QEMU's bulk stage is over and lend little
        # that time: up to three migrations, at 64 MiB/s, and one of them
        # must have lent at least a quarter of the free memory (a driver
        # that stops after the first blocks, when QEMU shows CMD_ID_STOP
        # in the config while the command runs, lent 0-2 blocks a time).
        g.qmp("migrate-set-parameters", **{"max-bandwidth": 64 << 20})
        want = free0 // 4
        lent = prev = 0
        for attempt in range(3):
            g.qmp("migrate", uri="exec:cat > /dev/null")
            done = bl.wait_until(lambda: g.qmp("query-migrate").get("status") in (
                "completed", "failed"), 300, step=0.5)
            st = g.qmp("query-migrate").get("status")
            c.require(done and st == "completed", "migration completed (%s)" % st)
            g.qmp("cont")
            cnt = g.counters()
            blocks = cnt["hint_blocks"] - prev
            prev = cnt["hint_blocks"]
            lent = max(lent, blocks * HINT_BLOCK_KIB)
            print("info: migration %d: %d hint blocks lent (%d KiB)" % (
                attempt + 1, blocks, blocks * HINT_BLOCK_KIB))
            if lent >= want:
                break
        c.check(lent >= want, "one migration lent %d KiB of free page hints "
                "(want >= %d KiB, a quarter of the free memory)" % (lent, want))
        # after DONE every lent block goes back to the allocator
        back = bl.wait_until(lambda: g.meminfo()[1] >= free0 - 32 * 1024, 30)
        c.check(back, "free memory back after the migration: %d KiB (before %d)" % (
            g.meminfo()[1], free0))
        c.check(g.finish() == 0, "guest program exits cleanly, console clean")


def migrate(c):
    """Balloon pages are movable: taking memory blocks offline migrates
    them (the host is told about both pages of each move), the balloon
    keeps its size, and every page still comes back on deflation."""
    with bl.AgentGuest(mem=MEM, timeout=900) as g:
        g.boot()
        total0, _, _ = g.meminfo()
        deep = MEM - deep_balloon(g, total0)
        g.set_target(deep)
        bl.wait_actual(g, deep, timeout=180)
        g.set_target(512)
        bl.wait_actual(g, 512, timeout=180)
        before = g.counters()
        offlined = 0
        for blk in range(1, 8):
            st = "/sys/devices/system/memory/memory%d/state" % blk
            ans, _ = g.cmd("sh echo offline > %s" % st, timeout=300)
            if ans != "0":
                continue        # holds unmovable pages
            offlined += 1
            ans, _ = g.cmd("sh echo online > %s" % st, timeout=300)
            c.check(ans == "0", "memory block %d offline and online again" % blk)
        c.require(offlined > 0, "took %d memory blocks offline" % offlined)
        after = g.counters()
        moved = after["migrated_pages"] - before["migrated_pages"]
        c.check(moved > 0, "%d balloon pages migrated" % moved)
        c.check(after["size_pages"] == 512 * PAGES_PER_MIB and
                g.balloon_actual() == 512 << 20, "balloon size unchanged")
        total, _, _ = g.meminfo()
        c.check(total == total0 - 512 * 1024, "MemTotal still %d KiB - 512 MiB" % total0)
        g.set_target(MEM)
        bl.wait_actual(g, MEM, timeout=180)
        cnt = g.settled_counters()
        c.check(cnt["size_pages"] == 0 and cnt["inflated_pages"] == cnt["deflated_pages"],
                "every page given back after the migrations (inflated %d, deflated %d)" % (
                    cnt["inflated_pages"], cnt["deflated_pages"]))
        total, _, _ = g.meminfo()
        c.check(total == total0, "MemTotal back to %d KiB (%d)" % (total0, total))
        c.check(g.finish() == 0, "guest program exits cleanly, console clean")


def unplug(c):
    """Hot-unplug (QMP device_del, an ACPI eject on the pc machine's PCI
    bus) of the balloon device while it holds 512 MiB."""
    with bl.AgentGuest(mem=MEM, timeout=600) as g:
        total0, free0 = inflate_512(c, g)
        g.qmp("device_del", id="balloon0")
        gone = bl.wait_until(lambda: [e for e in g.events if e.get("event") ==
                                      "DEVICE_DELETED" and e["data"].get("device") ==
                                      "balloon0"], 120, step=0.5)
        c.require(gone, "DEVICE_DELETED: the guest let the balloon device go")
        check_given_back(c, g, total0, free0)
        ans, _ = g.cmd("sh test -e /sys/kernel/debug/memcoop/balloon")
        c.check(ans != "0", "the driver's debugfs file of the device is gone")
        ans, _ = g.cmd("sh test -d /sys/module/memcoop")
        c.check(ans == "0", "memcoop.ko still loaded")
        try:
            g.qmp("query-balloon")
            c.check(False, "QEMU has no balloon any more")
        except bl.mclab.QMPError as e:
            c.check(True, "QEMU has no balloon any more (%s)" % e)
        # a new device binds to the same driver and works
        g.qmp("device_add", driver="virtio-balloon-pci", id="balloon1")
        bound = bl.wait_until(
            lambda: g.cmd("sh test -e /sys/kernel/debug/memcoop/balloon")[0] == "0", 60, step=1)
        c.require(bound, "a hot-plugged balloon binds to memcoop again")
        g.set_target(768)
        bl.wait_actual(g, 768, timeout=180)
        total, _, _ = g.meminfo()
        c.check(total == total0 - 256 * 1024, "the new balloon inflates: MemTotal %d KiB" % total)
        g.set_target(MEM)
        bl.wait_actual(g, MEM, timeout=180)
        ans, _ = g.cmd("rmmod")
        c.check(ans == "0", "rmmod memcoop after the unplug")
        c.check(g.finish() == 0, "guest program exits cleanly, console clean")


TESTS = {f.__name__: f for f in (follow, stats, oom, reporting, unload, cycles, hostile,
                                 suspend, hint, migrate, unplug)}

if __name__ == "__main__":
    argv = sys.argv[1:]
    if len(argv) == 3 and argv[0] == "--smp" and argv[1].isdigit():
        bl.SMP = int(argv[1])
        argv = argv[2:]
    if len(argv) != 1 or argv[0] not in TESTS:
        sys.exit("usage: balloon_qmp.py [--smp N] %s" % "|".join(TESTS))
    bl.run(TESTS[argv[0]])
