#!/usr/bin/env python3
"""memcoop-guestd with the real programs in one guest (mclab --host-usr):
Debian's redis-server (allkeys-lru, 12000 values of 16 KiB: jemalloc gives evicted large
values back; small ones fragment, see docs/memcoop-guestd.md), a G1 JVM
(openjdk-17, heap free ratios as shipped) that keeps 64 MiB live (until
after its measured shrink) and let 128 MiB become garbage, and a cgroup v2
holding page cache.  Checked here, on the host:

 1. each adapter, asked through the control socket, frees memory and
    answers what it measured: its FREED is at most what the test measured
    itself (VmRSS, memory.current) leaving, and near it;
 2. a balloon squeeze from the host (memcoop.ko's relay): requests arrive,
    every one is answered before the driver's deadline, the balloon reaches
    its target, nothing is OOM-killed, Redis answers;
 3. after the squeeze, maxmemory grows back in steps; SIGTERM restores it;
 4. failure injections with the real programs: Redis stopped (SIGSTOP),
    the JVM killed, the cgroup removed: each answered within its
    deadline-ms with a clear last action, the daemon alive.
"""

import os
import re
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "lab"))
import hostapps  # noqa: E402
import mclab     # noqa: E402

MEM = 1024
SQUEEZE_BEYOND_FREE = 96    # MiB the applications (and caches) must give
RELAY_DEADLINE_MS = 1000
MIB = 1 << 20
JVM_LEAST = 150 * MIB       # of 128 asked (the daemon asks more, yield): 218 MiB with
                            # the ratios lowered for the GC.run, 132 MiB without

SCRIPT = hostapps.LOOPBACK_UP + r"""
mkdir -p /sys/fs/cgroup
mount -t cgroup2 none /sys/fs/cgroup || exit 92
echo +memory > /sys/fs/cgroup/cgroup.subtree_control || exit 92
R="redis-cli -s /tmp/redis.sock"
redis-server --port 0 --unixsocket /tmp/redis.sock --save '' --appendonly no \
	--maxmemory-policy allkeys-lru --enable-debug-command yes \
	--daemonize yes --pidfile /tmp/redis.pid --logfile /tmp/redis.log || exit 91
for i in $(seq 300); do $R ping > /dev/null 2>&1 && break; sleep 0.1; done
echo "STEP redis $(cut -d' ' -f1 /proc/uptime)"
$R debug populate 12000 k 16384 > /dev/null || exit 93
echo "STEP populated $(cut -d' ' -f1 /proc/uptime)"
%(java)s
mkdir /sys/fs/cgroup/pc
sh -c 'echo $$ > /sys/fs/cgroup/pc/cgroup.procs; exec head -c 100000000 /usr/lib/jvm/java-17-openjdk-amd64/lib/modules > /dev/null'
echo "STEP pagecache $(cut -d' ' -f1 /proc/uptime) $(cat /sys/fs/cgroup/pc/memory.current)"
rss() { awk '/^VmRSS:/ { print $2 * 1024 }' /proc/$1/status; }
cat > /tmp/g.conf <<'MCLAB_EOF'
socket "/tmp/g.sock"
grow-margin 64M
grow-step 64M
grow-period 1s
app redis {
	type redis
	address "unix:/tmp/redis.sock"
	floor 32M
	deadline-ms 2000
}
app jvm {
	type jvm
	pid-file /tmp/java.pid
	deadline-ms 8000
}
app pc {
	type cgroup
	path /sys/fs/cgroup/pc
	deadline-ms 4000
}
MCLAB_EOF
memcoop-guestd --check -f /tmp/g.conf || exit 95
memcoop-guestd -d -f /tmp/g.conf > /tmp/g.log 2>&1 &
gd=$!
st() { memcoop-guestd status -s /tmp/g.sock; }
for i in $(seq 100); do st > /dev/null 2>&1 && break; sleep 0.1; done
sleep 1
st | sed 's/^/STATUS0 /'
# wait until app $1's last action is a shrink newer than $2 requests
shrunk() {
	for i in $(seq 300); do
		n=$(grep -c "app $1: shrink asked" /tmp/g.log)
		[ "$n" -gt "$2" ] && return 0
		sleep 0.1
	done
	return 1
}
ctl() {	# app size measure-command
	n=$(grep -c "app $1: shrink asked" /tmp/g.log)
	b=$($3)
	memcoop-guestd shrink $1 $2 -s /tmp/g.sock || echo "CTL-FAILED $1"
	shrunk $1 $n || echo "CTL-TIMEOUT $1"
	sleep 1
	echo "CTL $1 before=$b after=$($3)"
	st | grep "^$1 " | sed 's/^/STATUS1 /'
}
jrss() { rss $(cat /tmp/java.pid); }
pcm() { cat /sys/fs/cgroup/pc/memory.current; }
%(ctl_jvm)s
ctl pc 64M pcm
rrss() { rss $(cat /tmp/redis.pid); }
echo "BEFORE-SQUEEZE redis_rss=$(rrss) maxmemory=$($R config get maxmemory | tail -1)"
echo "READY-SQUEEZE memfree=$(awk '/^MemFree:/ { print int($2 / 1024) }' /proc/meminfo)"
read x < /dev/ttyS2
echo "AFTER-SQUEEZE redis_rss=$(rrss) maxmemory=$($R config get maxmemory | tail -1) ping=$($R ping)"
st | sed 's/^/STATUS2 /'
read x < /dev/ttyS2
# deflated: maxmemory grows back in 64M steps, once a second
for i in $(seq 200); do
	[ "$($R config get maxmemory | tail -1)" = 0 ] && break
	sleep 0.1
done
echo "GROWN maxmemory=$($R config get maxmemory | tail -1)"
# failure injections with the real programs
kill -STOP $(cat /tmp/redis.pid)
t0=$(cut -d' ' -f1 /proc/uptime); n=$(grep -c "app redis: shrink asked" /tmp/g.log)
memcoop-guestd shrink redis 16M -s /tmp/g.sock
shrunk redis $n
echo "HUNG-REDIS ms=$(awk -v a=$t0 '{ printf "%%d", ($1 - a) * 1000 }' /proc/uptime)"
kill -CONT $(cat /tmp/redis.pid)
kill -9 $(cat /tmp/java.pid) 2> /dev/null; sleep 0.5
n=$(grep -c "app jvm: shrink asked" /tmp/g.log)
memcoop-guestd shrink jvm 16M -s /tmp/g.sock; shrunk jvm $n
rmdir /sys/fs/cgroup/pc || echo "RMDIR-FAILED"
n=$(grep -c "app pc: shrink asked" /tmp/g.log)
memcoop-guestd shrink pc 16M -s /tmp/g.sock; shrunk pc $n
st | sed 's/^/STATUS3 /'
# lowered, then SIGTERM: the limit found is restored
n=$(grep -c "app redis: shrink asked" /tmp/g.log)
memcoop-guestd shrink redis 32M -s /tmp/g.sock; shrunk redis $n
echo "LOWERED maxmemory=$($R config get maxmemory | tail -1)"
kill -TERM $gd; wait $gd; echo "GUESTD-EXIT $?"
echo "RESTORED maxmemory=$($R config get maxmemory | tail -1) ping=$($R ping)"
sed 's/^/GLOG /' /tmp/g.log
"""


JAVA = r"""
%(carry)s
java -XX:+UseG1GC -Xms16m -Xmx384m -XX:TieredStopAtLevel=1 -Xshare:auto \
	-cp /tmp/classes Garbage 128 64 > /tmp/java.log 2>&1 &
echo $! > /tmp/java.pid
for i in $(seq 6000); do
	grep -q GARBAGE-READY /tmp/java.log && break
	kill -0 $(cat /tmp/java.pid) 2> /dev/null || break
	sleep 0.1
done
grep -q GARBAGE-READY /tmp/java.log || { cat /tmp/java.log; exit 94; }
echo "STEP java $(cut -d' ' -f1 /proc/uptime)"
"""
# after the measured shrink, the live part goes too (as in main's test,
# the JVM holds ~50 MiB when the squeeze comes)
JVM_DROP = r"""
touch /tmp/garbage-drop
for i in $(seq 100); do grep -q GARBAGE-DROPPED /tmp/java.log && break; sleep 0.1; done
n=$(grep -c "app jvm: shrink asked" /tmp/g.log)
memcoop-guestd shrink jvm 64M -s /tmp/g.sock; shrunk jvm $n
"""
# without the JVM: a pid file of a process that is gone (the failure case)
NO_JAVA = "sh -c 'echo $$ > /tmp/java.pid'\n"


def status_line(out, tag, app):
    m = re.search(r"(?m)^%s %s (\w+) (yes|no) (\d+) (\d+) ([\d.]+) (.*)$" % (tag, app), out)
    if not m:
        return None
    return {"type": m.group(1), "registered": m.group(2) == "yes",
            "asked": int(m.group(3)), "freed": int(m.group(4)),
            "yield": float(m.group(5)), "last": m.group(6)}


def main():
    mclab.install_signal_handlers()
    missing = hostapps.missing_programs()
    if missing:
        print("FAIL: missing prerequisite: %s (sh .ci/deps.sh)" % ", ".join(missing))
        return 1
    java = "--java" in sys.argv[1:]
    tmp = mclab.mkdtemp("guestd-apps")
    if java:
        classes = hostapps.javac([os.path.join(here, "Garbage.java")], tmp)
        parts = {"java": JAVA % {"carry": hostapps.carry(classes)},
                 "ctl_jvm": "ctl jvm 128M jrss\n" + JVM_DROP}
    else:
        parts = {"java": NO_JAVA, "ctl_jvm": ""}
    bad = []
    with mclab.Guest(mem=MEM, host_usr=True, name="guestd-apps", timeout=540,
                     modparams={"relay_deadline_ms": RELAY_DEADLINE_MS}) as g:
        g.start("sh", "-c", SCRIPT % parts)
        try:
            m = g.wait_for(r"READY-SQUEEZE memfree=(\d+)", timeout=400)
        except mclab.LabError:
            sys.stdout.write(g.output)
            raise
        # more than is free: the driver must ask the applications
        target = MEM - int(m.group(1)) - SQUEEZE_BEYOND_FREE
        g.set_target(target)
        try:
            secs = g.wait_actual(target, timeout=120, tolerance_mib=4)
            print("squeeze: balloon at %d MiB (%d MiB free before) in %.1f s" % (
                target, int(m.group(1)), secs))
        except mclab.LabError as e:
            bad.append("squeeze: %s" % e)
        time.sleep(2)
        g.send("squeezed")
        try:
            g.wait_for(r"STATUS2 pc ", timeout=60)
        except mclab.LabError:
            sys.stdout.write(g.output)
            raise
        g.set_target(MEM)
        g.wait_actual(MEM, timeout=120, tolerance_mib=4)
        g.send("deflated")
        rc = g.wait_exit(timeout=200)
        out = g.output
        console = g.console
    sys.stdout.write(out)
    if rc != 0:
        bad.append("guest script exit %d" % rc)
    if re.search(r"Out of memory|oom-kill|Killed process", console):
        bad.append("OOM kill in the guest")

    # 0: registered with the real relay
    for app in ("redis", "jvm", "pc"):
        s = status_line(out, "STATUS0", app)
        if s is None or not s["registered"]:
            bad.append("%s not registered at start: %s" % (app, s))
    # redis's deadline-ms 2000 is longer than the driver's: the daemon says so
    if not re.search(r"app redis: memcoop.ko's relay_deadline_ms is %d, deadline-ms is 2000"
                     % RELAY_DEADLINE_MS, out):
        bad.append("no warning that relay_deadline_ms is shorter than redis's deadline-ms")
    # 1: control-socket shrinks, measured independently
    # jvm: 64 MiB live, 128 MiB garbage: GC.run with the ratios as shipped
    # gives almost nothing back (live / 30% > what is committed)
    for app, least in ((("jvm", JVM_LEAST),) if java else ()) + (("pc", 32 * MIB),):
        m = re.search(r"(?m)^CTL %s before=(\d+) after=(\d+)$" % app, out)
        s = status_line(out, "STATUS1", app)
        if not m or s is None:
            bad.append("%s: no control shrink result" % app)
            continue
        drop = int(m.group(1)) - int(m.group(2))
        print("%s: guestd says freed %.1f MiB, the test measured %.1f MiB leaving" % (
            app, s["freed"] / MIB, drop / MIB))
        if s["freed"] < least:
            bad.append("%s freed %d MiB, expected at least %d" % (
                app, s["freed"] >> 20, least >> 20))
        # honest: never more than what left (8 MiB for what moved meanwhile)
        if s["freed"] > drop + 8 * MIB:
            bad.append("%s answered %d MiB, only %d MiB left" % (
                app, s["freed"] >> 20, drop >> 20))
    # the G1 JVM is held after its shrink (jvm.c): an allowance, logged
    if java and not re.search(r"(?m)^GLOG .*app jvm: hold: RSS allowance \d", out):
        bad.append("jvm: no hold after the G1 shrink")
    # 2: the squeeze through the relay
    answers = [(int(n), int(ms)) for n, ms in re.findall(
        r"answered request ([1-9]\d*): \d+ of \d+ pages in (\d+) ms", out)]
    print("relay answers: %d, slowest %d ms" % (
        len(answers), max([ms for _, ms in answers] or [0])))
    if not answers:
        bad.append("no shrink request of the driver was answered")
    late = [a for a in answers if a[1] >= RELAY_DEADLINE_MS]
    if late:
        bad.append("answers at or after the driver's deadline: %s" % late)
    asked = sum((status_line(out, "STATUS2", a) or {"asked": 0})["asked"]
                for a in ("redis", "jvm", "pc"))
    asked1 = sum((status_line(out, "STATUS1", a) or {"asked": 0})["asked"]
                 for a in (("jvm", "pc") if java else ("pc",)))
    if asked <= asked1:
        bad.append("the squeeze asked the applications for nothing")
    m = re.search(r"(?m)^AFTER-SQUEEZE redis_rss=(\d+) maxmemory=(\d+) ping=(\S+)$", out)
    if not m or m.group(3) != "PONG":
        bad.append("Redis not answering after the squeeze")
    elif int(m.group(2)) == 0:
        bad.append("the squeeze left Redis's maxmemory unlimited")
    # 3: grow-back, restore on SIGTERM
    if not re.search(r"(?m)^GROWN maxmemory=0$", out):
        bad.append("maxmemory did not grow back to unlimited")
    if not re.search(r"app redis: grow: maxmemory", out):
        bad.append("no grow-back step logged")
    m = re.search(r"(?m)^LOWERED maxmemory=(\d+)$", out)
    if not m or int(m.group(1)) == 0:
        bad.append("the last shrink did not lower maxmemory")
    if not re.search(r"(?m)^GUESTD-EXIT 0$", out):
        bad.append("memcoop-guestd did not exit 0 on SIGTERM")
    if not re.search(r"(?m)^RESTORED maxmemory=0 ping=PONG$", out):
        bad.append("SIGTERM did not restore maxmemory 0")
    # 4: failure injections
    m = re.search(r"(?m)^HUNG-REDIS ms=(\d+)$", out)
    s = status_line(out, "STATUS3", "redis")
    if not m or s is None or "no answer in time" not in s["last"]:
        bad.append("stopped Redis: %s" % (s and s["last"]))
    elif int(m.group(1)) > 2000 + 3000:
        bad.append("stopped Redis: the shrink took %s ms (deadline-ms 2000)" % m.group(1))
    for app, words in (("jvm", "no JVM found"), ("pc", "no memory.current")):
        s = status_line(out, "STATUS3", app)
        if s is None or words not in s["last"]:
            bad.append("%s failure: last action %s" % (app, s and s["last"]))
    for what in bad:
        print("FAIL: %s" % what)
    if not bad:
        print("PASS: memcoop-guestd served Redis, %s a cgroup in the guest" % (
            "a G1 JVM and" if java else "and"))
    mclab.cleanup_tmp(failed=bool(bad))
    return 1 if bad else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except mclab.LabError as e:
        print("FAIL: %s" % e)
        sys.exit(1)
