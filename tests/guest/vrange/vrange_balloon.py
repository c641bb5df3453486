#!/usr/bin/env python3
"""vrange-balloon-race: volatile ranges against a flapping balloon.

The guest (mct-vrange race) keeps most of its memory in volatile chunks,
takes them back, checks and refills them, while four threads cycle small
ranges between volatile and non-volatile.  The host meanwhile moves the
balloon target between 224 MiB and 512 MiB, so the driver must purge
volatile ranges (mc_reclaim_for_balloon) while the guest marks them
non-volatile.  Passes when the guest saw no corrupt data, the console is
clean (no WARNING/BUG), and the balloon path purged at least one range.
"""
import re
import sys
import time

import debugkernel
import mclab

MIB = 1 << 20
# The guest's RAM and its top balloon target.  KASAN's shadow takes 1/8
# of RAM off MemTotal: on the debug kernel the guest gets that 1/8 on
# top, and every target moves up by it, so the balloon takes as much as
# on Debian's kernels and leaves about the same MemTotal (at 512 MiB
# mct-vrange was OOM-killed there).
MEM = 512


def run(g, scale):
    # 200 MiB of volatile bulk, no in-guest purger: only the balloon purges.
    # On the debug kernel (@scale 4) the guest filled 36 MiB in 60 s, the
    # balloon found its memory free and never purged: there every phase
    # takes @scale times as long.
    g.start('mct-vrange', 'race', str(100 * scale), '4', '200', '0')
    g.wait_for(r'READY', timeout=180)
    t0 = time.time()
    # First let the bulk fill (160 MiB volatile, at most 60 s times scale): on a loaded host it fills
    # slowly, and an inflation that finds the memory free never needs the
    # balloon to purge (2 of 5 runs failed so).  The guest runs 100 s (times scale).
    while time.time() < t0 + 60 * scale:
        vols = re.findall(r'^t=\d+s volatile (\d+)', g.output, re.M)
        if vols and int(vols[-1]) >= 160 * MIB // 4096:
            break
        time.sleep(1)
    print(f'flapping after {time.time() - t0:.0f} s (volatile pages {vols[-1] if vols else "-"})',
          flush=True)
    end = min(time.time() + 70 * scale, t0 + 95 * scale)
    n = 0
    while time.time() < end:
        # a new low target each time: the balloon asks memcoop to make room
        # once per target, and on a loaded host the first inflation may find
        # the volatile bulk not yet filled
        target = 224 - 4 * (n // 2 % 4) if n % 2 == 0 else 512
        g.qmp('balloon', value=(target + MEM - 512) * MIB)
        n += 1
        time.sleep(6)
    g.qmp('balloon', value=MEM * MIB)
    rc = g.wait_exit(timeout=300)
    out = g.output
    sys.stdout.write(out)
    if rc != 0:
        print(f'FAIL: mct-vrange race exited {rc}')
        print('--- console tail ---\n' + g.console[-8000:])
        return 1
    m = re.search(r'balloon purges (\d+)', out)
    if not m or int(m.group(1)) == 0:
        print('FAIL: the balloon never purged a volatile range')
        return 1
    print(f'ok: {n} balloon changes, {m.group(1)} balloon purges')
    return 0


def main():
    global MEM
    if debugkernel.has_kasan(mclab.Lab().kernel_version()):
        MEM += MEM // 8
    g = mclab.Guest(mem=MEM, smp=2, driver='memcoop', timeout=500)
    try:
        return run(g, debugkernel.timeout_scale(g.lab.kernel_version()))
    except (mclab.LabError, OSError) as e:
        print(f'FAIL: {e}')
        print('--- program output ---\n' + g.output)
        print('--- console tail ---\n' + g.console[-6000:])
        return 1
    finally:
        g.close()


if __name__ == '__main__':
    sys.exit(main())
