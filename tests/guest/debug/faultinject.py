#!/usr/bin/env python3
"""Fault injection on the debug guest kernel (suite debug).

failslab and fail_page_alloc, aimed at one task through
/proc/self/make-it-fail (task-filter), fail the allocations of:

 1. the ABI, relay, vrange and write-tracking test programs, at several
    probabilities, with the `times` knob bounding each run and `space`
    skipping what exec allocates (measured on a static busybox), so that
    the failures land in the program's own system calls;
 2. module load and the balloon probe, through mct-finit (one
    finit_module; busybox insmod retries a failed one with init_module),
    failing only allocations made from module code (the stack filter: a
    return address above the kernel image, `require-start` at its
    `_end`), so not load_module's own or the insmod process's:
    a. every fault-injection point of a load in turn, alone
       (/proc/thread-self/fail-nth; a plain load counts them): each
       allocation of memcoop_init and of the probe, and of what they
       call, fails once; a load that was refused must say ENOMEM (or
       EINVAL, the driver core's word for one of its own), and is
       followed by the next point's load, which what it left behind
       would fail with another error; a loaded module must unload;
    b. everything from a point on (`space` measured as what a plain load
       allocates, then the last TAILS per mille of it fail, `times`
       unbounded), so that the error paths themselves meet failures;
       after each, rmmod, or a plain load and rmmod, works.

A failed allocation may make a program fail; what must hold is what the
kernel does about it: no oops, no KASAN/lockdep report, no kmemleak leak
into memcoop.ko (the lab checks all three on the console), and nothing
broken for the next call: after every injected run the same program run
again without injection passes, rmmod succeeds, and a module loaded
cleanly at the end drives the balloon (the host sets a target and waits
for it).  The injection must really happen: every round reports how many
failures it injected (`times` left), and the test fails if a kind of
round injected none.
"""
import re
import sys

import mclab

# (name, command) run under injection; each must pass when run plainly
PROGRAMS = [
    ("abi", "mct-abi"),
    ("relay-badargs", "mct-relay badargs"),
    ("vrange-semantics", "mct-vrange semantics"),
    ("vrange-badargs", "mct-vrange badargs"),
    ("wtrack-basic", "mct-wtrack basic"),
    ("wtrack-badlists", "mct-wtrack badlists"),
]
PROBABILITIES = [10, 50, 100]
TIMES = 40                      # failures allowed per injected run
# load rounds: the last TAILS per mille of a plain load's allocations fail
TAILS = [15, 30, 60, 125, 250, 500, 750, 1000]
# at most this many points of a load fail in turn (a plain load has ~320)
NTHMAX = 1000

GUEST_SCRIPT = r"""
set -u
D=/sys/kernel/debug
KO=/lib/modules/mc/memcoop.ko
bad=0
for k in failslab fail_page_alloc; do
	[ -d $D/$k ] || { echo "fi: FAIL no $D/$k (CONFIG_FAULT_INJECTION_DEBUG_FS)"; exit 1; }
	echo Y > $D/$k/task-filter
	echo 0 > $D/$k/verbose
	echo N > $D/$k/ignore-gfp-wait
	echo 0 > $D/$k/probability
done
# user pages (__GFP_HIGHMEM) are left alone: a failed user page fault only
# retries, and it would hide what the module does
echo Y > $D/fail_page_alloc/ignore-gfp-highmem
echo 0 > $D/fail_page_alloc/min-order
arm() {		# kind probability times space
	echo 1 > $D/$1/interval
	echo $3 > $D/$1/times
	echo $4 > $D/$1/space
	echo $2 > $D/$1/probability
}
disarm() {	# kind; prints the failures injected since arm
	echo 0 > $D/$1/probability
	left=$(cat $D/$1/times)
	echo $(( $2 - left ))
	echo 0 > $D/$1/times
}
inject() {	# command...: run it with make-it-fail set, at most 120 s
	timeout 120 sh -c 'echo 1 > /proc/self/make-it-fail && exec "$@"' sh "$@" > /tmp/fi.out 2>&1
}
for kind in failslab fail_page_alloc; do
	# what exec and exit of a static program allocate under the filter:
	# skipped, so that the failures land in the program's own calls
	arm $kind 100 1 1000000000
	inject /bin/busybox true
	echo 0 > $D/$kind/probability
	skip=$((1000000000 - $(cat $D/$kind/space)))
	disarm $kind 1 > /dev/null
	echo "fi: exec kind=$kind skip=$skip"
	for prog in @PROGS@; do
		cmd=$(echo $prog | tr : ' ')
		for p in @PROBS@; do
			arm $kind $p @TIMES@ $skip
			inject $cmd
			rc=$?
			n=$(disarm $kind @TIMES@)
			echo "fi: run kind=$kind prog=$prog p=$p rc=$rc injected=$n"
			if ! timeout 120 $cmd > /tmp/fi.clean 2>&1; then
				echo "fi: FAIL $prog fails without injection after kind=$kind p=$p:"
				tail -5 /tmp/fi.clean
				bad=1
			fi
		done
	done
done
# the module after the program rounds still drives the balloon, and so
# does the one loaded cleanly after the load rounds (below)
echo "fi: balloon-ready programs"
read line < /dev/ttyS2
echo "fi: host says $line"
rmmod memcoop || { echo "fi: FAIL rmmod after the program rounds"; bad=1; }
# the load rounds fail only what module code allocates: a return address
# above the kernel image in the allocation's stack (memcoop.ko's init and
# probe and what they call, the virtqueues' pages among it).  Loads go
# through mct-finit: busybox insmod follows a failed finit_module with a
# second, clean init_module.
kend=$(grep ' _end$' /proc/kallsyms | cut -d' ' -f1)
case $kend in ''|0000000000000000) echo "fi: FAIL no _end in /proc/kallsyms"; exit 1 ;; esac
for k in failslab fail_page_alloc; do
	echo 32 > $D/$k/stacktrace-depth
	echo 0x$kend > $D/$k/require-start
done
# vmalloc'd pages are highmem: counted too
echo N > $D/fail_page_alloc/ignore-gfp-highmem
bound() {
	ls -d /sys/bus/virtio/drivers/memcoop-balloon/virtio* > /dev/null 2>&1 && echo 1 || echo 0
}
loaded() {
	grep -q '^memcoop ' /proc/modules && echo 1 || echo 0
}
finit() {	# nth [make-it-fail]: sets rc and left from mct-finit
	if [ $# = 2 ]; then inject mct-finit $1 $KO; else mct-finit $1 $KO > /tmp/fi.out 2>&1; fi
	set -- $(sed -n 's/^finit: rc=\([0-9]*\) left=\(-*[0-9]*\)$/\1 \2/p' /tmp/fi.out)
	rc=${1:-x} left=${2:-x}
}
after() {	# what: the module unloads, or loads cleanly and unloads
	if [ $(loaded) = 1 ]; then
		rmmod memcoop || { echo "fi: FAIL rmmod after $1"; bad=1; }
	else
		finit 0
		[ "$rc" = 0 ] && rmmod memcoop || {
			echo "fi: FAIL plain load/rmmod after $1 (rc=$rc)"; bad=1; }
	fi
}
# 1. every fault-injection point of a load in turn fails, alone
# (/proc/self/fail-nth): first how many points a plain load goes through
finit 1000000
count=$((1000000 - left))
echo "fi: nth-count count=$count rc=$rc"
after "the counting load"
n=1
while [ $n -le $count ] && [ $n -le @NTHMAX@ ]; do
	echo 1 > $D/failslab/times
	echo 1 > $D/fail_page_alloc/times
	finit $n
	slab=$((1 - $(cat $D/failslab/times)))
	page=$((1 - $(cat $D/fail_page_alloc/times)))
	l=$(loaded)
	echo "fi: nth n=$n rc=$rc left=$left slab=$slab page=$page loaded=$l bound=$(bound)"
	[ "$rc" != 0 ] && [ $l = 1 ] && { echo "fi: FAIL load $n refused (rc=$rc) but loaded"; bad=1; }
	# a refused load is followed by the next point's load: what it left
	# behind (a device, a debugfs directory) would fail that one with
	# EEXIST or EBUSY, not ENOMEM
	if [ $l = 1 ]; then
		rmmod memcoop || { echo "fi: FAIL rmmod after failing point $n"; bad=1; }
	fi
	n=$((n + 1))
done
echo 0 > $D/failslab/times
echo 0 > $D/fail_page_alloc/times
# 2. every allocation from a point on fails (`space`, `times` unbounded):
# the point moves from after the probe into the probe and memcoop_init
MANY=2000
for kind in failslab fail_page_alloc; do
	# what a plain load allocates from module code (bytes for failslab,
	# pages for fail_page_alloc)
	arm $kind 100 1 1000000000
	finit 0 inject
	echo 0 > $D/$kind/probability
	used=$((1000000000 - $(cat $D/$kind/space)))
	n=$(disarm $kind 1)
	echo "fi: measure kind=$kind rc=$rc injected=$n used=$used"
	after "the measuring load ($kind)"
	for f in @TAILS@; do
		tail=$((used * f / 1000))
		[ $tail -gt 0 ] || tail=1
		arm $kind 100 $MANY $((used - tail))
		finit 0 inject
		n=$(disarm $kind $MANY)
		l=$(loaded)
		echo "fi: load kind=$kind tail=$tail rc=$rc injected=$n loaded=$l bound=$(bound)"
		[ "$rc" != 0 ] && [ $l = 1 ] && { echo "fi: FAIL load refused (rc=$rc) but loaded"; bad=1; }
		after "an injected load (kind=$kind tail=$tail)"
	done
done
insmod $KO || { echo "fi: FAIL clean insmod after the load rounds"; exit 1; }
ls -d /sys/bus/virtio/drivers/memcoop-balloon/virtio* > /dev/null 2>&1 || {
	echo "fi: FAIL the clean load did not bind the balloon"; exit 1; }
echo "fi: balloon-ready loads"
read line < /dev/ttyS2
echo "fi: host says $line"
grep virtio /proc/interrupts
[ $bad = 0 ]
"""


def main():
    mclab.install_signal_handlers()
    progs = " ".join(c.replace(" ", ":") for _, c in PROGRAMS)
    script = (GUEST_SCRIPT.replace("@PROGS@", progs)
              .replace("@PROBS@", " ".join(map(str, PROBABILITIES)))
              .replace("@TIMES@", str(TIMES))
              .replace("@TAILS@", " ".join(map(str, TAILS)))
              .replace("@NTHMAX@", str(NTHMAX)))
    failures = []
    mem = 768
    # the lab waits debugkernel.TIMEOUT_SCALE times longer on the debug kernel
    with mclab.Guest(name="faultinject", mem=mem, smp=2, timeout=450) as g:
        g.start("sh", "-c", script)
        try:
            for after in ("programs", "loads"):
                g.wait_for(r"fi: balloon-ready %s\n" % after, timeout=450)
                g.set_target(mem - 256)
                took = g.wait_actual(mem - 256, timeout=75)
                print("balloon: %d -> %d MiB in %.2f s after the injected %s" % (
                    mem, mem - 256, took, after))
                g.set_target(mem)
                g.wait_actual(mem, timeout=75)
                g.send("done")
            rc = g.wait_exit(timeout=300)
        except mclab.LabError:
            sys.stdout.write(g.output)
            raise
        out = g.output
    sys.stdout.write(out)
    if rc != 0:
        failures.append("the guest script exited %d" % rc)
    failures += [l for l in out.splitlines() if l.startswith("fi: FAIL")]

    runs = re.findall(r"fi: run kind=(\S+) prog=(\S+) p=(\d+) rc=(\d+) injected=(-?\d+)", out)
    loads = re.findall(r"fi: load kind=(\S+) tail=(\d+) rc=(\S+) injected=(-?\d+) "
                       r"loaded=(\d) bound=(\d)", out)
    counted = re.findall(r"fi: nth-count count=(-?\d+) rc=(\S+)", out)
    nths = re.findall(r"fi: nth n=(\d+) rc=(\S+) left=(\S+) slab=(\d) page=(\d) "
                      r"loaded=(\d) bound=(\d)", out)
    want_runs = 2 * len(PROGRAMS) * len(PROBABILITIES)
    if len(loads) != 2 * len(TAILS):
        failures.append("%d injected loads reported, expected %d" % (len(loads), 2 * len(TAILS)))
    if len(runs) != want_runs:
        failures.append("%d injected program runs reported, expected %d" % (len(runs), want_runs))
    for kind in ("failslab", "fail_page_alloc"):
        for name, cmd in PROGRAMS:
            prog = cmd.replace(" ", ":")
            inj = sum(int(r[4]) for r in runs if r[0] == kind and r[1] == prog)
            if kind == "failslab" and inj == 0:
                # every program allocates slab objects in the module (the
                # file, its ring, its ranges); a round that failed none did
                # not test anything
                failures.append("%s: no allocation of %s failed" % (kind, name))
        kl = [l for l in loads if l[0] == kind]
        # everything from a point on failing: memcoop_init or the probe
        # (its virtqueues' pages for fail_page_alloc) must fail somewhere
        if not any(int(l[3]) > 0 and (l[2] != "0" or l[5] == "0") for l in kl):
            failures.append("%s: no load with failures from a point on failed "
                            "(insmod or the probe)" % kind)
        print("%s: %d program runs, %d failures injected; %d loads failing from a point on, "
              "%d refused, %d loaded without the device bound" % (
                  kind, sum(1 for r in runs if r[0] == kind),
                  sum(int(r[4]) for r in runs if r[0] == kind), len(kl),
                  sum(1 for l in kl if l[2] != "0"),
                  sum(1 for l in kl if l[4] == "1" and l[5] == "0")))

    # one point failing at a time
    count = int(counted[0][0]) if counted else 0
    if not counted or counted[0][1] != "0" or count <= 0:
        failures.append("the counting load failed or counted nothing: %s" % (counted,))
    elif len(nths) != min(count, NTHMAX):
        failures.append("%d points failed in turn, expected %d" % (len(nths), min(count, NTHMAX)))
    hit = [t for t in nths if t[2] == "0"]
    # the count moves by the odd slab page between loads; not by much
    if len(nths) - len(hit) > max(4, count // 20):
        failures.append("%d of %d points were not reached" % (len(nths) - len(hit), len(nths)))
    # ENOMEM, or EINVAL where the driver core maps a failed allocation to
    # it (module_add_driver(), its "drivers" kobject)
    odd = [t for t in nths if t[1] not in ("0", "12", "22")]
    if odd:
        failures.append("a failed allocation surfaced as another error: %s" % (
            ", ".join("point %s errno %s" % (t[0], t[1]) for t in odd[:8])))
    refused = [t for t in hit if t[1] != "0"]
    unbound = [t for t in hit if t[1] == "0" and t[6] == "0"]
    for kind, col in (("failslab", 3), ("fail_page_alloc", 4)):
        mine = [t for t in hit if t[col] == "1"]
        if not mine:
            failures.append("%s: no point of a load was one of its" % kind)
        elif not any(t[1] != "0" or t[6] == "0" for t in mine):
            failures.append("%s: no single failure failed insmod or the probe" % kind)
    if not refused:
        failures.append("no single failure refused insmod (memcoop_init's error paths)")
    if not unbound:
        failures.append("no single failure failed the probe (module loaded, device unbound)")
    print("one at a time: %d points of a load (%d failslab, %d fail_page_alloc): %d refused "
          "insmod, %d failed the probe, %d were absorbed (a fallback, an optional file), "
          "%d not reached" % (
              len(nths), sum(1 for t in hit if t[3] == "1"), sum(1 for t in hit if t[4] == "1"),
              len(refused), len(unbound), len(hit) - len(refused) - len(unbound),
              len(nths) - len(hit)))
    for f in failures:
        print("FAIL:", f)
    print("faultinject: %s" % ("FAIL" if failures else "ok"))
    mclab.cleanup_tmp(failed=bool(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
