#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""memcoopd's /metrics scraped by a real Prometheus server, with the
shipped rules and dashboard checked against it.

usage: prom_scrape.py SRCDIR MEMCOOPD MEMCOOPCTL

Two QEMUs stopped before their first instruction (-S: QMP and the balloon
device work, no guest boots) are memcoopd's guests: vm1 found in qmp-dir,
vm2 from a guest block (manual, weight 333, limits).  The host's
/proc (meminfo below host-floor, PSI totals) and KSM's sysfs are files the
test writes.  Then:

- `promtool check metrics` on the endpoint's body: no warning at all;
- a real `prometheus` (Debian's) scrapes it every second with
  host-agent/prometheus/memcoop-rules.yml loaded: the target is up, every
  rule evaluates without error, the series carry the values memcoopd has
  (weights, modes, limits, KSM, PSI as a counter in seconds), a target
  set with memcoopctl shows in the per-guest change counter, the
  recording rules compute from the real names, and MemcoopHostBelowFloor
  is pending for the host held below its floor;
- each metric's type as Prometheus recorded it: every *_total is a
  counter, nothing else is;
- `promtool check rules` and `promtool test rules` on the shipped files;
- every expression of memcoop-dashboard.json is valid PromQL on that
  server and names only exported series or recording rules.

Exit 0 pass, 1 fail.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

MIB = 1 << 20


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)
    print("ok: " + what, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http(url, timeout=10):
    return urllib.request.urlopen(url, timeout=timeout).read().decode()


def paused_qemu(path, mib):
    argv = [shutil.which("qemu-system-x86_64") or "qemu-system-x86_64",
            "-S", "-machine", "pc", "-accel", "tcg", "-m", str(mib),
            "-nodefaults", "-no-user-config", "-display", "none",
            "-qmp", "unix:%s,server=on,wait=off" % path,
            "-device", "virtio-balloon-pci,id=balloon0"]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while not os.path.exists(path):
        if p.poll() is not None or time.time() > deadline:
            raise Fail("QEMU made no QMP socket %s" % path)
        time.sleep(0.1)
    return p


class Prom:
    def __init__(self, d, target, rules):
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        conf = os.path.join(d, "prometheus.yml")
        with open(conf, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n"
                    "  evaluation_interval: 1s\n"
                    "rule_files:\n  - %s\n"
                    "scrape_configs:\n  - job_name: memcoop\n"
                    "    static_configs:\n      - targets: ['%s']\n"
                    % (rules, target))
        self.logf = open(os.path.join(d, "prometheus.log"), "w")
        self.p = subprocess.Popen(
            ["prometheus", "--config.file=" + conf,
             "--storage.tsdb.path=" + os.path.join(d, "tsdb"),
             "--web.listen-address=127.0.0.1:%d" % self.port],
            stdout=self.logf, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while True:
            try:
                http(self.base + "/-/ready", 2)
                break
            except OSError:
                if self.p.poll() is not None or time.time() > deadline:
                    raise Fail("prometheus did not start:\n" + open(
                        self.logf.name).read())
                time.sleep(0.3)

    def api(self, path, **q):
        r = json.loads(http(self.base + "/api/v1/" + path + "?" +
                            urllib.parse.urlencode(q)))
        if r.get("status") != "success":
            raise Fail("prometheus %s %s: %s" % (path, q, r))
        return r["data"]

    def query(self, expr):
        return self.api("query", query=expr)["result"]

    def value(self, expr):
        r = self.query(expr)
        return None if len(r) != 1 else float(r[0]["value"][1])

    def wait(self, what, expr, pred, timeout=30):
        deadline = time.time() + timeout
        v = None
        while time.time() < deadline:
            v = self.value(expr)
            if v is not None and pred(v):
                print("ok: %s (%s = %g)" % (what, expr, v), flush=True)
                return v
            time.sleep(0.5)
        raise Fail("%s: %s is %s" % (what, expr, v))

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def run(srcdir, memcoopd, memcoopctl, d):
    rules = os.path.join(srcdir, "host-agent", "prometheus",
                         "memcoop-rules.yml")
    rtest = os.path.join(srcdir, "host-agent", "prometheus",
                         "memcoop-rules.test.yml")
    dash = os.path.join(srcdir, "host-agent", "prometheus",
                        "memcoop-dashboard.json")
    procs = []
    try:
        r = subprocess.run(["promtool", "check", "rules", rules],
                           capture_output=True, text=True)
        check(r.returncode == 0 and "SUCCESS" in r.stdout and
              "WARN" not in r.stdout + r.stderr,
              "promtool check rules: %s" % (r.stdout + r.stderr).strip())
        r = subprocess.run(["promtool", "test", "rules", rtest],
                           capture_output=True, text=True)
        check(r.returncode == 0, "promtool test rules passes" +
              ("" if r.returncode == 0 else ":\n" + r.stdout + r.stderr))

        qdir = os.path.join(d, "qmp")
        proc = os.path.join(d, "proc")
        ksm = os.path.join(d, "ksm")
        for x in (qdir, os.path.join(proc, "pressure"), ksm):
            os.makedirs(x)
        with open(os.path.join(proc, "meminfo"), "w") as f:
            f.write("MemTotal: 8388608 kB\nMemFree: 400000 kB\n"
                    "MemAvailable: 524288 kB\nSwapFree: 0 kB\n")
        with open(os.path.join(proc, "pressure", "memory"), "w") as f:
            f.write("some avg10=1.00 avg60=0.50 avg300=0.10 total=2500000\n"
                    "full avg10=0.00 avg60=0.00 avg300=0.00 total=1250\n")
        for k, v in (("run", 0), ("pages_shared", 10), ("pages_sharing", 250),
                     ("pages_unshared", 5), ("pages_volatile", 1),
                     ("full_scans", 7), ("pages_to_scan", 100),
                     ("sleep_millisecs", 20), ("pages_scanned", 1000),
                     ("use_zero_pages", 0), ("ksm_zero_pages", 0)):
            with open(os.path.join(ksm, k), "w") as f:
                f.write("%d\n" % v)
        procs.append(paused_qemu(os.path.join(qdir, "vm1.qmp"), 256))
        procs.append(paused_qemu(os.path.join(d, "vm2.qmp"), 320))
        mport = free_port()
        sock = os.path.join(d, "ctl.sock")
        conf = os.path.join(d, "memcoopd.conf")
        with open(conf, "w") as f:
            f.write('socket "%s"\nqmp-dir "%s"\nproc "%s"\n'
                    'ksm on\nksm-sysfs "%s"\ntick 500ms\n'
                    'metrics 127.0.0.1:%d\nhost-floor 1G\nhost-comfort 2G\n'
                    'guest-min 128M\nrestore-on-exit no\n'
                    'guest vm2 {\n\tqmp "%s"\n\tmode manual\n\tmin 160M\n'
                    '\tmax 300M\n\tweight 333\n}\n'
                    % (sock, qdir, proc, ksm, mport,
                       os.path.join(d, "vm2.qmp")))
        logf = open(os.path.join(d, "memcoopd.log"), "w")
        md = subprocess.Popen([memcoopd, "-d", "-f", conf], stdout=logf,
                              stderr=subprocess.STDOUT)
        procs.append(md)
        murl = "http://127.0.0.1:%d/metrics" % mport
        deadline = time.time() + 30
        body = ""
        while body.count('memcoop_guest_online{guest="') < 2 or \
                'memcoop_guest_online{guest="vm2"} 1' not in body:
            if md.poll() is not None or time.time() > deadline:
                raise Fail("memcoopd: no two guests online in /metrics:\n%s"
                           "\n%s" % (body, open(logf.name).read()))
            time.sleep(0.3)
            try:
                body = http(murl)
            except OSError:
                pass
        check(True, "memcoopd serves both guests online")
        r = subprocess.run(["promtool", "check", "metrics"], input=body,
                           capture_output=True, text=True)
        check(r.returncode == 0 and (r.stdout + r.stderr).strip() == "",
              "promtool check metrics: no warning" +
              ("" if r.returncode == 0 and not (r.stdout + r.stderr).strip()
               else ":\n" + r.stdout + r.stderr))
        exported = set(re.findall(r"^# TYPE (\S+) ", body, re.M))

        prom = Prom(d, "127.0.0.1:%d" % mport, rules)
        procs.append(prom)
        prom.wait("Prometheus scrapes memcoopd", 'up{job="memcoop"}',
                  lambda v: v == 1)
        prom.wait("guest weight from the config",
                  'memcoop_guest_weight{guest="vm2"}', lambda v: v == 333)
        prom.wait("mode as a state set: vm2 manual",
                  'memcoop_guest_mode{guest="vm2",mode="manual"}',
                  lambda v: v == 1)
        check(prom.value('memcoop_guest_mode{guest="vm2",mode="auto"}') == 0
              and prom.value('count(memcoop_guest_mode{guest="vm2"})') == 3,
              "... its other modes 0, three series")
        check(prom.value('memcoop_guest_lower_limit_bytes{guest="vm2"}')
              == 160 * MIB and
              prom.value('memcoop_guest_upper_limit_bytes{guest="vm2"}')
              == 300 * MIB, "vm2's limits 160M..300M")
        check(prom.value('memcoop_guest_lower_limit_bytes{guest="vm1"}')
              == 128 * MIB and
              prom.value('memcoop_guest_upper_limit_bytes{guest="vm1"}')
              == 256 * MIB, "vm1's limits guest-min..its size")
        check(prom.value("memcoop_host_psi_memory_some_seconds_total") == 2.5,
              "PSI some total as seconds (2500000 us)")
        check(prom.value("memcoop_ksm_pages_sharing") == 250 and
              prom.value("memcoop_ksm_full_scans_total") == 7 and
              prom.value("memcoop_ksm_sleep_seconds") == 0.02,
              "KSM series from its sysfs")
        prom.wait("recording rule on the real names: host below its floor",
                  "instance:memcoop_host_mem_above_floor:bytes",
                  lambda v: v == -512 * MIB)
        prom.wait("MemcoopHostBelowFloor pending",
                  'count(ALERTS{alertname="MemcoopHostBelowFloor",'
                  'alertstate="pending"})', lambda v: v == 1)
        check(prom.value('memcoop_guest_target_changes_total{guest="vm1"}')
              == 0, "vm1: no target change yet")
        r = subprocess.run([memcoopctl, "-s", sock, "set", "vm1", "target",
                            "200M"], capture_output=True, text=True,
                           timeout=30)
        check(r.returncode == 0, "memcoopctl set vm1 target 200M")
        prom.wait("the change counted for vm1",
                  'memcoop_guest_target_changes_total{guest="vm1"}',
                  lambda v: v == 1)
        prom.wait("... and its target",
                  'memcoop_guest_target_bytes{guest="vm1"}',
                  lambda v: v == 200 * MIB)
        prom.wait("guest:memcoop_ballooned:bytes for vm2 (nothing ballooned)",
                  'guest:memcoop_ballooned:bytes{guest="vm2"}',
                  lambda v: v == 0)
        bad = []
        for g in prom.api("rules")["groups"]:
            for rule in g["rules"]:
                if rule.get("health") != "ok":
                    bad.append((rule["name"], rule.get("lastError")))
        check(not bad, "every shipped rule evaluates: %s" % bad)
        meta = prom.api("targets/metadata",
                        match_target='{job="memcoop"}')
        types = {m["metric"]: m["type"] for m in meta}
        check(exported <= set(types), "Prometheus has metadata for all %d "
              "exported metrics" % len(exported))
        wrong = [(n, t) for n, t in types.items()
                 if n.endswith("_total") != (t == "counter")]
        check(not wrong, "every *_total is a counter, no other: %s" % wrong)

        recorded = {r["name"] for g in prom.api("rules")["groups"]
                    for r in g["rules"] if r["type"] == "recording"}
        panels = json.load(open(dash))["panels"]
        nexpr = 0
        for p in panels:
            for t in p["targets"]:
                e = t["expr"].replace("$instance", ".*")
                prom.query(e)		# raises on a PromQL error
                names = set(re.findall(r"[a-z_:][a-z0-9_:]*(?=\s*[{\[])", e))
                unknown = names - exported - recorded - {"up"}
                check(not unknown, "dashboard %r: %s names only known "
                      "series" % (p["title"], t["refId"]))
                nexpr += 1
        check(nexpr >= 10, "%d dashboard expressions checked" % nexpr)
    finally:
        for p in reversed(procs):
            if isinstance(p, Prom):
                p.stop()
            elif p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    d = tempfile.mkdtemp(prefix="prom-scrape-")
    os.chmod(d, 0o755)
    try:
        run(sys.argv[1], sys.argv[2], sys.argv[3], d)
    except Fail as e:
        print("FAIL: %s (files kept in %s)" % (e, d), flush=True)
        return 1
    shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
