#!/usr/bin/env python3
"""Balloon benchmark: stock virtio_balloon against memcoop.ko, same run.

A 1 GiB guest under stock QEMU; the host asks for 768 MiB (QMP `balloon`
to 256 MiB) and then for it back (1024 MiB).  Measured per direction:
wall time from the QMP command until query-balloon reports the target,
guest CPU time (busy jiffies in the guest's /proc/stat) and QEMU's CPU
time (/proc/PID/stat on the host: guest vCPU emulation plus the device
model's per-page work).  Each is the median of --rounds rounds.  Both
guests run at once and the rounds alternate between them, so that load
from elsewhere on the host hits both alike.

Prints one line per metric:
  BENCH name=<metric> value=<memcoop> unit=s baseline=<stock> ratio=<stock/memcoop>
and, per direction, where memcoop's time went by its own counters
(debugfs inflate_ns/inflate_host_ns...): waiting for QEMU to process
a request (QEMU discards page by page, madvise per 4 KiB page) against
the guest's own work (allocation, which with init_on_alloc=1 zeroes every
page, and bookkeeping).

Two passes: the Debian defaults (init_on_alloc=1: the page allocator
zeroes every page before the balloon gets it, which the driver cannot
avoid and which dominates inflation under TCG), and init_on_alloc=0
(metrics named *_noinit_*), which shows the driver's own cost.

Options: --rounds N (5), --mem MiB (1024), --take MiB (768),
--poison (keep the lab's page_poison=1; default boots with page_poison=0,
the stock Debian setting), --modparam k=v (memcoop.ko parameters),
--append ARGS (more guest kernel arguments, e.g. init_on_alloc=0).
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("MCLAB_SRCDIR", os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..")), "tests", "guest", "balloon"))

import balloonlib as bl  # noqa: E402
import mclab  # noqa: E402


def wait_target(g, mib, timeout=300):
    want = mib << 20
    t0 = time.monotonic()
    while True:
        if g.balloon_actual() == want:
            return time.monotonic()
        if time.monotonic() - t0 > timeout:
            raise mclab.LabError("balloon did not reach %d MiB in %d s (at %d MiB)" % (
                mib, timeout, g.balloon_actual() >> 20))
        time.sleep(0.005)


def one_round(g, driver, args, res, r):
    low = args.mem - args.take
    for phase, target in (("inflate", low), ("deflate", args.mem)):
        gc0, _ = g.cpu()
        qc0 = g.qemu_cpu_seconds()
        t0 = time.monotonic()
        g.set_target(target)
        t1 = wait_target(g, target)
        qc1 = g.qemu_cpu_seconds()
        gc1, _ = g.cpu()
        res[phase + "_s"].append(t1 - t0)
        res[phase + "_guest_cpu_s"].append(gc1 - gc0)
        res[phase + "_qemu_cpu_s"].append(qc1 - qc0)
        print("%s round %d %s: %.3f s, guest cpu %.2f s, qemu cpu %.2f s" % (
            driver, r, phase, t1 - t0, gc1 - gc0, qc1 - qc0), flush=True)
        time.sleep(0.3)


def measure(args):
    """Both guests run at once, rounds alternate between them, so that
    load from elsewhere on the host hits both alike."""
    keys = ("inflate_s", "deflate_s", "inflate_guest_cpu_s", "deflate_guest_cpu_s",
            "inflate_qemu_cpu_s", "deflate_qemu_cpu_s")
    res = {d: {k: [] for k in keys} for d in ("stock", "memcoop")}
    append = ("" if args.poison else "page_poison=0") + " " + args.append
    mp = dict(kv.split("=", 1) for kv in args.modparam)
    with bl.AgentGuest(mem=args.mem, driver="stock", append=append, timeout=1200,
                       name="bench-stock") as gs, \
         bl.AgentGuest(mem=args.mem, driver="memcoop", modparams=mp, append=append,
                       timeout=1200, name="bench-memcoop") as gm:
        gs.boot()
        gm.boot()
        time.sleep(1)
        cnt0 = gm.counters()
        for r in range(args.rounds):
            order = [("stock", gs), ("memcoop", gm)]
            if r % 2:
                order.reverse()
            for driver, g in order:
                one_round(g, driver, args, res[driver], r)
        cnt = gm.counters()
        print("memcoop counters: %s" % " ".join(
            "%s=%d" % kv for kv in sorted(cnt.items())), flush=True)
        split = {k: (cnt[k] - cnt0[k]) / 1e9 / args.rounds for k in (
            "inflate_ns", "inflate_host_ns", "deflate_ns", "deflate_host_ns")}
        for g in (gs, gm):
            rc = g.finish()
            if rc != 0:
                raise mclab.LabError("%s: guest program exited %d" % (g.name, rc))
    return ({k: statistics.median(v) for k, v in res["stock"].items()},
            {k: statistics.median(v) for k, v in res["memcoop"].items()}, split)


def report(stock, ours, split, args, suffix, what):
    tag = "%dm" % args.take
    print("-- %s" % what, flush=True)
    for k in ("inflate_s", "deflate_s", "inflate_guest_cpu_s", "deflate_guest_cpu_s",
              "inflate_qemu_cpu_s", "deflate_qemu_cpu_s"):
        phase, rest = k.split("_", 1)
        name = "%s_%s%s_%s" % (phase, tag, suffix, rest)
        ratio = stock[k] / ours[k] if ours[k] > 0 else float("inf")
        print("BENCH name=%s value=%.3f unit=s baseline=%.3f ratio=%.2f" % (
            name, ours[k], stock[k], ratio), flush=True)
    for k in ("inflate_s", "deflate_s"):
        ratio = stock[k] / ours[k]
        print("%s%s: %.2fx stock throughput (goal 2x: %s)" % (
            k.split("_")[0], suffix, ratio, "met" if ratio >= 2 else "NOT met"), flush=True)
    # What bounds it: the driver's own clock, per round (means, not medians).
    for phase, guest in (("inflate", "allocating pages (zeroing them when init_on_alloc=1)"),
                         ("deflate", "freeing pages")):
        total, host = split[phase + "_ns"], split[phase + "_host_ns"]
        print("bound %s%s: driver busy %.3f s per round: waiting for QEMU (its per-page "
              "discard) %.3f s, %s and bookkeeping %.3f s; wall %.3f s" % (
                  phase, suffix, total, host, guest, total - host, ours[phase + "_s"]),
              flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--mem", type=int, default=1024)
    ap.add_argument("--take", type=int, default=768)
    ap.add_argument("--poison", action="store_true")
    ap.add_argument("--modparam", action="append", default=[])
    ap.add_argument("--append", default="", help="more guest kernel arguments")
    ap.add_argument("--no-noinit", action="store_true",
                    help="skip the second pass with init_on_alloc=0")
    args = ap.parse_args()
    mclab.install_signal_handlers()
    try:
        stock, ours, split = measure(args)
        report(stock, ours, split, args, "", "Debian defaults (init_on_alloc=1): every "
               "allocated page is zeroed first")
        if not args.no_noinit:
            args.append += " init_on_alloc=0"
            stock, ours, split = measure(args)
            report(stock, ours, split, args, "_noinit", "init_on_alloc=0: no zeroing of "
                   "balloon pages")
    except (mclab.LabError, mclab.QMPError, bl.Failed) as e:
        print("FAIL: %s" % e, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
