"""hostapps: the host's Debian programs in lab guests (Guest(host_usr=True)).

The guest sees the host's /usr read-only through virtio-9p, so Debian's
redis-server, redis-benchmark, redis-cli, memcached and java run in it
unmodified.  This module holds what the tests, the apps benchmark and
the demo share: Java compiled on the host (the JRE's own jdk.compiler
module, so openjdk-17-jre-headless is enough) and files carried into
the guest inside its shell script.
"""

import base64
import glob
import os
import shlex
import subprocess

import mclab

# Programs --host-usr must provide (the apps benchmark and the demo use them).
PROGRAMS = ["redis-server", "redis-cli", "redis-benchmark", "memcached", "java"]

# The guest's loopback is down after boot: servers listen on 127.0.0.1.
LOOPBACK_UP = "ip link set lo up || exit 90\n"


def missing_programs():
    """The PROGRAMS the host lacks (each as 'NAME (package)')."""
    pkgs = {"redis-server": "redis-server", "redis-cli": "redis-tools",
            "redis-benchmark": "redis-tools", "memcached": "memcached",
            "java": "openjdk-17-jre-headless"}
    return ["%s (%s)" % (p, pkgs[p]) for p in PROGRAMS
            if not os.access("/usr/bin/" + p, os.X_OK)]


def javac(sources, outdir):
    """Compile the .java @sources into @outdir with the host JRE's compiler
    module; {class file name: bytes}."""
    os.makedirs(outdir, exist_ok=True)
    r = subprocess.run(["java", "-m", "jdk.compiler/com.sun.tools.javac.Main",
                        "--release", "17", "-d", outdir] + list(sources),
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise mclab.LabError("javac %s failed:\n%s%s" % (" ".join(sources), r.stdout, r.stderr))
    return {os.path.basename(p): open(p, "rb").read()
            for p in glob.glob(os.path.join(outdir, "*.class"))}


def carry(files, guest_dir="/tmp/classes"):
    """A shell snippet that writes @files ({name: bytes}) into @guest_dir
    (the guest script carries them: the initramfs is shared by all runs)."""
    lines = ["mkdir -p %s" % shlex.quote(guest_dir)]
    for name, data in sorted(files.items()):
        lines.append("base64 -d > %s <<'MCLAB_EOF'\n%s\nMCLAB_EOF" % (
            shlex.quote(os.path.join(guest_dir, name)),
            base64.encodebytes(data).decode().strip()))
    return "\n".join(lines) + "\n"



def carry_guestd(builddir):
    """A snippet that puts the build's memcoop-guestd (dynamically linked:
    its libraries are the host's /usr) on the guest's PATH, or "" when the
    build has none.  The script is then too long for one argument of
    `sh -c`: run it with Guest.start("eval", script)."""
    path = os.path.join(builddir, "guest-driver", "guestd", "memcoop-guestd")
    if not os.path.exists(path):
        return ""
    return carry({"memcoop-guestd": open(path, "rb").read()}, "/tmp/bin") + \
        "chmod 755 /tmp/bin/memcoop-guestd\nexport PATH=$PATH:/tmp/bin\n"


# ---------------------------------------------------------------------------
# Redis under redis-benchmark load, sampled once a second

# The guest side of a Redis run: redis-server (maxmemory, allkeys-lru),
# filled with @fill_n keys by a Lua loop (redis-benchmark's own key names),
# from a key space (@keys) larger than the cache,
# then served: one redis-benchmark of GETs (2 clients) and one of SETs
# (1 client, a miss refilled), uniform over the same key space.  A sampler
# prints a SAMPLE line a second (the fields of sample_fields()).  %(before)s
# runs after the fill (memcoop-guestd, say); a first line on ttyS2 marks
# the squeeze (MARK), a second ends the run.
REDIS_SCRIPT = LOOPBACK_UP + r"""
redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no \
	--maxmemory %(maxmem_mib)dmb --maxmemory-policy allkeys-lru \
	--daemonize yes --logfile /tmp/redis.log --pidfile /tmp/redis.pid || exit 91
for i in $(seq 200); do redis-cli ping > /dev/null 2>&1 && break; sleep 0.1; done
t0=$(cut -d' ' -f1 /proc/uptime)
i=0	# the keys redis-benchmark -r uses (key:%%012d), set by Redis itself (fast)
while [ $i -lt %(fill_n)d ]; do
	redis-cli eval "for k = tonumber(ARGV[1]), tonumber(ARGV[2]) do
		redis.call('SET', string.format('key:%%012d', k), string.rep('x', tonumber(ARGV[3]))) end" \
		0 $i $((i + 4999)) %(value)d > /dev/null || exit 92
	i=$((i + 5000))
done
echo "FILLED keys=$(redis-cli dbsize) secs=$(awk -v a=$t0 '{print $1 - a}' /proc/uptime)"
%(before)s
redis-benchmark -t get -r %(keys)d -n 2000000000 -c 2 -q > /tmp/load-get.log 2>&1 &
lg=$!
redis-benchmark -t set -r %(keys)d -d %(value)d -n 2000000000 -c 1 -q > /tmp/load-set.log 2>&1 &
ls=$!
sample() {
	pid=$(cat /tmp/redis.pid 2>/dev/null)
	rss=$(awk '/^VmRSS:/ {print $2}' /proc/$pid/status 2>/dev/null)
	st=$(timeout 10 redis-cli info 2>/dev/null | tr -d '\r' | awk -F: '
		$1 == "total_commands_processed" {o = $2} $1 == "keyspace_hits" {h = $2}
		$1 == "keyspace_misses" {m = $2} $1 == "evicted_keys" {e = $2}
		$1 == "maxmemory" {x = $2} $1 == "used_memory" {u = $2}
		END {if (o != "") printf "ops=%%s hits=%%s misses=%%s evicted=%%s maxmemory=%%s used=%%s", o, h, m, e, x, u}')
	echo "SAMPLE t=$(cut -d' ' -f1 /proc/uptime) rss_kib=${rss:-0}" \
		"avail_kib=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)" \
		"keys=$(timeout 10 redis-cli dbsize 2>/dev/null || echo 0) ${st:-down=1}"
}
(while :; do sample; sleep 1; done) &
sp=$!
read x < /dev/ttyS2
echo "MARK squeeze t=$(cut -d' ' -f1 /proc/uptime)"
read x < /dev/ttyS2
kill $sp $lg $ls 2> /dev/null
sample
for f in /tmp/load-get.log /tmp/load-set.log; do	# redis-benchmark's last words
	echo "LOADGEN $f: $(tail -c 300 $f | tr '\r' '\n' | grep . | tail -2 | tr '\n' ' ')"
done
%(after)s
if timeout 5 redis-cli ping 2>/dev/null | grep -q PONG; then echo "APP-ALIVE"; else echo "APP-DEAD"; fi
redis-cli shutdown nosave > /dev/null 2>&1
echo "OOM-KILLS $(dmesg | grep -c 'Killed process')"
dmesg | grep 'Killed process' | sed 's/^/OOM-KILLED /'
exit 0
"""

# The JVM service (tests/bench/apps/CacheService.java) the same way:
# CacheService prints the SAMPLE lines itself.  G1 (a 1-CPU guest would
# pick Serial) with the caller's %(jvm_flags)s (the bench: none, the heap
# free ratios as shipped); C1 only, which is what a TCG guest can afford.
JVM_SCRIPT = LOOPBACK_UP + r"""
%(carry)s
java -XX:+UseG1GC -Xms32m -Xmx%(xmx_mib)dm %(jvm_flags)s \
	-XX:TieredStopAtLevel=1 -cp /tmp/classes CacheService %(cache_mib)d %(key_pct)d \
	%(batch_mib)d %(value)d 1 &
jp=$!
echo "$jp" > /tmp/java.pid
while ! grep -q . /proc/$jp/cmdline 2>/dev/null; do sleep 0.1; done
%(before)s
read x < /dev/ttyS2
echo "MARK squeeze t=$(cut -d' ' -f1 /proc/uptime)"
read x < /dev/ttyS2
if kill -0 $jp 2>/dev/null; then echo "APP-ALIVE"; else echo "APP-DEAD"; fi
# the run is over: java stops before memcoop-guestd does (its exit sets the
# heap free ratios back: a JVM left running then grew until OOM-killed, 53 s
# later, in its SIGTERM shutdown)
kill -9 $jp 2>/dev/null; wait $jp 2>/dev/null
%(after)s
echo "OOM-KILLS $(dmesg | grep -c 'Killed process')"
dmesg | grep 'Killed process' | sed 's/^/OOM-KILLED /'
exit 0
"""


def samples(out):
    """The SAMPLE lines of @out as dicts of floats (t: guest uptime, s)."""
    res = []
    for line in out.splitlines():
        if line.startswith("SAMPLE "):
            d = {}
            for kv in line.split()[1:]:
                k, _, v = kv.partition("=")
                try:
                    d[k] = float(v)
                except ValueError:
                    pass
            if "t" in d:
                res.append(d)
    return res


def phase(smp, t0, t1):
    """Over the samples with t0 <= t < t1: ops/s and hit rate (from the
    counters' deltas, the server's own totals), mean RSS and keys.  A
    server that went away (no counters) counts 0 ops/s for that time."""
    xs = [s for s in smp if t0 <= s["t"] < t1]
    res = {"ops_s": float("nan"), "hit": float("nan"), "rss_mib": float("nan"),
           "keys": float("nan"), "n": len(xs)}
    if not xs:
        return res
    ops = hits = misses = 0.0
    span = 0.0
    for a, b in zip(xs, xs[1:]):
        span += b["t"] - a["t"]
        if "ops" in a and "ops" in b and b["ops"] >= a["ops"]:
            ops += b["ops"] - a["ops"]
            hits += b["hits"] - a["hits"]
            misses += b["misses"] - a["misses"]
    if span > 0:
        res["ops_s"] = ops / span
    if hits + misses > 0:
        res["hit"] = hits / (hits + misses)
    elif not any("ops" in s for s in xs):
        res["hit"] = 0.0                # the server was gone: nothing served
    res["rss_mib"] = sum(s.get("rss_kib", 0) for s in xs) / len(xs) / 1024
    res["keys"] = sum(s.get("keys", 0) for s in xs) / len(xs)
    return res
