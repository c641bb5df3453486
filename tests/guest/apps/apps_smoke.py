#!/usr/bin/env python3
"""The lab runs Debian's own programs (mclab run --host-usr): one guest
starts redis-server and memcached and talks to them (PING, SET/GET,
memcached set/get/stats), then runs java -version and a class compiled on
the host.  Every answer is checked here, on the host."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lab"))
import hostapps  # noqa: E402
import mclab     # noqa: E402

SCRIPT = hostapps.LOOPBACK_UP + r"""
echo "T-START $(cut -d" " -f1 /proc/uptime)"
redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no > /tmp/redis.log 2>&1 &
memcached -u root -l 127.0.0.1 -p 11211 -m 16 > /tmp/memcached.log 2>&1 &
for i in $(seq 100); do redis-cli ping > /dev/null 2>&1 && break; sleep 0.1; done
echo "REDIS-PING $(redis-cli ping)"
echo "REDIS-SET $(redis-cli set mclab-key "value from $(uname -r)")"
echo "REDIS-GET $(redis-cli get mclab-key)"
echo "REDIS-VERSION $(redis-cli info server | grep redis_version)"
for i in $(seq 100); do echo quit | nc 127.0.0.1 11211 > /dev/null 2>&1 && break; sleep 0.1; done
printf 'set mk 0 0 7\r\nmc-9p-v\r\nget mk\r\nstats\r\nquit\r\n' | nc 127.0.0.1 11211 |
	sed 's/\r$//; s/^/MEMCACHED /' | grep -E '^MEMCACHED (STORED|VALUE|mc-9p|END|STAT (version|curr_items|pid) )'
echo "T-SERVERS $(cut -d" " -f1 /proc/uptime)"
java -version 2>&1 | sed 's/^/JAVA-VERSION /'
%(carry)s
java -Xshare:auto -XX:TieredStopAtLevel=1 -cp /tmp/classes Hello %(n)d
echo "T-JAVA $(cut -d" " -f1 /proc/uptime)"
redis-cli shutdown nosave > /dev/null 2>&1
"""


def main():
    mclab.install_signal_handlers()
    missing = hostapps.missing_programs()
    if missing:
        return mclab.skip("missing prerequisite: %s (sh .ci/deps.sh)" % ", ".join(missing))
    tmp = mclab.mkdtemp("apps-smoke")
    classes = hostapps.javac([os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                           "Hello.java")], tmp)
    n = int(time.time()) % 1000 + 100      # an answer that cannot be hard-coded
    script = SCRIPT % {"carry": hostapps.carry(classes), "n": n}
    with mclab.Guest(mem=512, host_usr=True, name="apps-smoke", timeout=150) as g:
        g.start("sh", "-c", script)
        rc = g.wait_exit()
        out = g.output
        ver = g.lab.kernel_version()
    sys.stdout.write(out)
    checks = [
        ("redis PING", r"(?m)^REDIS-PING PONG$"),
        ("redis SET", r"(?m)^REDIS-SET OK$"),
        ("redis GET", r"(?m)^REDIS-GET value from %s$" % re.escape(ver)),
        ("redis version", r"(?m)^REDIS-VERSION redis_version:\d+\.\d+"),
        ("memcached set", r"(?m)^MEMCACHED STORED$"),
        ("memcached get", r"(?m)^MEMCACHED VALUE mk 0 7\nMEMCACHED mc-9p-v\nMEMCACHED END$"),
        ("memcached stats", r"(?m)^MEMCACHED STAT version 1\.\d+"),
        ("memcached stats items", r"(?m)^MEMCACHED STAT curr_items 1$"),
        ("java -version", r'(?m)^JAVA-VERSION openjdk version "17\.'),
        ("java class", r"(?m)^HELLO-JAVA n=%d sum=%d vm=OpenJDK_64-Bit_Server_VM " % (
            n, n * (n + 1) * (2 * n + 1) // 6)),
    ]
    bad = [what for what, rx in checks if not re.search(rx, out)]
    if rc != 0:
        bad.append("guest script exit %d" % rc)
    for what in bad:
        print("FAIL: %s" % what)
    if not bad:
        print("PASS: redis-server, redis-cli, memcached and java (host /usr over 9p) "
              "answered in the guest (kernel %s)" % ver)
    mclab.cleanup_tmp(failed=bool(bad))
    return 1 if bad else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except mclab.LabError as e:
        print("FAIL: %s" % e)
        sys.exit(1)
