#!/usr/bin/env python3
"""Fault injection on the debug guest kernel (suite debug).

failslab and fail_page_alloc, aimed at one task through
/proc/self/make-it-fail (task-filter), fail the allocations of:

 1. the ABI, relay, vrange and write-tracking test programs, at several
    probabilities, with the `times` knob bounding each run and `space`
    skipping what exec allocates (measured on a static busybox), so that
    the failures land in the program's own system calls;
 2. module load and the balloon probe: `space` measured as what a plain
    insmod allocates, then each attempt fails every allocation in the
    last TAILS per mille of it (`times` unbounded), so that the first
    failure moves from the uevents after init into the probe (module
    loaded, device unbound), memcoop_init (insmod refused) and
    load_module; after each, rmmod, or a plain insmod and rmmod, works.

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
TAILS = [15, 30, 60, 125, 250, 500, 750]

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
# module memory (vmalloc) is highmem: counted for the loads; `times`
# bounds the user page faults that then fail and retry
echo N > $D/fail_page_alloc/ignore-gfp-highmem
MANY=2000
for kind in failslab fail_page_alloc; do
	# what a plain insmod allocates under the filter (bytes for failslab,
	# pages for fail_page_alloc); it varies by a few per cent between loads
	arm $kind 100 1 1000000000
	inject insmod $KO
	rc=$?
	echo 0 > $D/$kind/probability
	used=$((1000000000 - $(cat $D/$kind/space)))
	n=$(disarm $kind 1)
	echo "fi: measure kind=$kind rc=$rc injected=$n used=$used"
	rmmod memcoop || { echo "fi: FAIL rmmod after the measuring load ($kind)"; bad=1; }
	# every allocation after the first used-tail fails: the tail starts in
	# the uevents after init, in the probe, in memcoop_init, in load_module
	for f in @TAILS@; do
	for times in 1 $MANY; do
		tail=$((used * f / 1000))
		arm $kind 100 $times $((used - tail))
		inject insmod $KO
		rc=$?
		n=$(disarm $kind $times)
		bound=0
		ls -d /sys/bus/virtio/drivers/memcoop-balloon/virtio* > /dev/null 2>&1 && bound=1
		loaded=0
		grep -q '^memcoop ' /proc/modules && loaded=1
		echo "fi: load kind=$kind tail=$tail times=$times rc=$rc injected=$n loaded=$loaded bound=$bound"
		if [ $loaded = 1 ]; then
			rmmod memcoop || { echo "fi: FAIL rmmod after an injected load (kind=$kind tail=$tail)"; bad=1; }
		elif ! insmod $KO || ! rmmod memcoop; then
			echo "fi: FAIL plain insmod/rmmod after a refused load (kind=$kind tail=$tail)"
			bad=1
		fi
	done
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
              .replace("@TAILS@", " ".join(map(str, TAILS))))
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
    loads = re.findall(r"fi: load kind=(\S+) tail=(\d+) times=\d+ rc=(\d+) injected=(-?\d+) "
                       r"loaded=(\d) bound=(\d)", out)
    want_runs = 2 * len(PROGRAMS) * len(PROBABILITIES)
    if len(loads) != 4 * len(TAILS):
        failures.append("%d injected loads reported, expected %d" % (len(loads), 4 * len(TAILS)))
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
        # fail_page_alloc: a refused insmod needs a failure in the module's
        # vmalloc, whose place among the load's pages varies from load to
        # load; the probe's virtqueues come last, in the smallest tails:
        # a load that left the module unbound failed there
        page = kind == "fail_page_alloc"
        if not any(int(l[3]) > 0 and (l[2] != "0" or (page and l[5] == "0")) for l in kl):
            failures.append("%s: no load attempt failed%s" % (
                kind, " (insmod or the probe)" if page else ""))
        if not any(l[4] == "1" for l in kl):
            failures.append("%s: no load attempt got the module loaded "
                            "(the sweep never reached the module's own code)" % kind)
        if kind == "failslab" and not any(l[4] == "1" and l[5] == "0" for l in kl):
            # the probe allocates its state, queues and workqueue: some
            # tail must start there and leave the module loaded, unbound
            failures.append("%s: no load attempt failed the balloon probe" % kind)
        print("%s: %d program runs, %d failures injected; %d load attempts, %d refused, "
              "%d loaded without the device bound" % (
                  kind, sum(1 for r in runs if r[0] == kind),
                  sum(int(r[4]) for r in runs if r[0] == kind), len(kl),
                  sum(1 for l in kl if l[2] != "0"),
                  sum(1 for l in kl if l[4] == "1" and l[5] == "0")))
    for f in failures:
        print("FAIL:", f)
    print("faultinject: %s" % ("FAIL" if failures else "ok"))
    mclab.cleanup_tmp(failed=bool(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
