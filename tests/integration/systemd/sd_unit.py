#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""memcoopd.service and memcoopd's side of the systemd protocols.

usage: sd_unit.py unit SRCDIR MEMCOOPD
       sd_unit.py notify MEMCOOPD

unit    `systemd-analyze verify` accepts memcoopd.service (ExecStart
        pointed at this build's memcoopd, its man: Documentation= found
        in docs/man), and `systemd-analyze security --offline=yes` rates
        its exposure at most MAX_EXPOSURE, with the settings the issue
        asks for present (Type=notify, WatchdogSec, ExecReload,
        ProtectSystem=strict, ...) and no dependency on libvirtd.
notify  memcoopd under an emulated service manager: $NOTIFY_SOCKET is a
        datagram socket this test reads, $WATCHDOG_USEC a 2 s watchdog.
        READY=1 comes once the control socket is up; WATCHDOG=1 at least
        once per half period while the loop runs; a stopped loop
        (SIGSTOP) misses the watchdog deadline, which is what makes
        systemd kill and restart it, and pets again after SIGCONT;
        SIGHUP gives RELOADING=1 then READY=1; SIGTERM STOPPING=1.
        With $JOURNAL_STREAM naming its stderr, every line starts with
        its syslog priority (<4> for warnings); with a $JOURNAL_STREAM
        for another file, the plain timestamped format.

Why emulated: the CI machine runs as root but systemd is not PID 1 there
(and systemd-nspawn cannot boot a container on its cgroup-v1 tmpfs with
no system bus), so `systemd-run -p Type=notify` is not available; this
test plays systemd's part of the documented protocol (sd_notify(3),
sd_watchdog_enabled(3)) instead.  Exit 0 pass, 1 fail.
"""
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

MAX_EXPOSURE = 3.0


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)
    print("ok: " + what, flush=True)


def unit(srcdir, memcoopd):
    d = tempfile.mkdtemp(prefix="sd-unit-")
    try:
        text = open(os.path.join(srcdir, "host-agent",
                                 "memcoopd.service")).read()
        path = os.path.join(d, "memcoopd.service")
        with open(path, "w") as f:
            f.write(text.replace("/usr/sbin/memcoopd", memcoopd))
        # man:memcoopd(8) etc. must resolve: a man tree of our pages
        for sec in ("5", "8", "3"):
            os.makedirs(os.path.join(d, "man", "man" + sec))
        mandir = os.path.join(srcdir, "docs", "man")
        for n in os.listdir(mandir):
            if re.match(r".*\.[358]$", n):
                os.symlink(os.path.join(mandir, n),
                           os.path.join(d, "man", "man" + n[-1], n))
        env = dict(os.environ, MANPATH=os.path.join(d, "man"))
        r = subprocess.run(["systemd-analyze", "verify", path], env=env,
                           capture_output=True, text=True, timeout=120)
        check(r.returncode == 0 and r.stderr.strip() == "",
              "systemd-analyze verify: no error, no warning" +
              ("" if r.returncode == 0 and not r.stderr.strip()
               else ": rc %d: %s" % (r.returncode, r.stderr)))
        r = subprocess.run(["systemd-analyze", "security", "--offline=yes",
                            path], capture_output=True, text=True,
                           timeout=120)
        m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)",
                      r.stdout)
        check(r.returncode == 0 and m is not None,
              "systemd-analyze security --offline=yes rates the unit")
        print(r.stdout)
        check(float(m.group(1)) <= MAX_EXPOSURE,
              "exposure %s <= %.1f" % (m.group(1), MAX_EXPOSURE))
        r = subprocess.run(["systemd-analyze", "security", "--offline=yes",
                            "--threshold=%d" % int(MAX_EXPOSURE * 10),
                            path], capture_output=True, text=True,
                           timeout=120)
        check(r.returncode == 0, "and --threshold=%d passes" %
              int(MAX_EXPOSURE * 10))
        r = subprocess.run(["systemd-analyze", "security", "--offline=yes",
                            "--json=short", path], capture_output=True,
                           text=True, timeout=120)
        checks = {c["name"]: c["set"] for c in json.loads(r.stdout)}
        for name in ("ProtectSystem=", "ProtectKernelModules=",
                     "ProtectKernelTunables=", "NoNewPrivileges=",
                     "RestrictAddressFamilies=~…",
                     "RestrictAddressFamilies=~AF_PACKET",
                     "RestrictAddressFamilies=~AF_NETLINK",
                     "SystemCallArchitectures=", "MemoryDenyWriteExecute=",
                     "CapabilityBoundingSet=~CAP_SYS_ADMIN",
                     "CapabilityBoundingSet=~CAP_SYS_MODULE",
                     "PrivateDevices=", "ProtectHome=",
                     "SystemCallFilter=~@mount", "SystemCallFilter=~@module"):
            check(checks.get(name) is True, "security check %s met" % name)
        keys = {}
        for line in text.splitlines():
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                keys.setdefault(k, []).append(v)
        check(keys.get("Type") == ["notify"], "Type=notify")
        check(keys.get("ProtectSystem") == ["strict"], "ProtectSystem=strict")
        check(bool(keys.get("WatchdogSec")), "WatchdogSec set")
        check(any("-HUP" in v for v in keys.get("ExecReload", [])),
              "ExecReload sends SIGHUP")
        check(not any("libvirt" in v for k in ("Wants", "Requires", "BindsTo")
                      for v in keys.get(k, [])),
              "no Wants/Requires of libvirtd (the QMP backend needs none)")
    finally:
        shutil.rmtree(d)


class Manager:
    """systemd's side: a notify socket and a record of what came."""

    def __init__(self, d):
        self.path = os.path.join(d, "notify")
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.bind(self.path)
        self.msgs = []		# (time, text)

    def pump(self, secs):
        end = time.monotonic() + secs
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            r, _, _ = select.select([self.s], [], [], left)
            if r:
                self.msgs.append((time.monotonic(),
                                  self.s.recv(4096).decode()))

    def wait(self, text, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for t, m in self.msgs:
                if text in m.split("\n"):
                    return t
            self.pump(0.1)
        return None

    def pets(self, since, until):
        return [t for t, m in self.msgs if "WATCHDOG=1" in m.split("\n")
                and since <= t < until]


def notify(memcoopd):
    d = tempfile.mkdtemp(prefix="sd-notify-")
    os.chmod(d, 0o755)
    p = None
    try:
        sock = os.path.join(d, "ctl.sock")
        conf = os.path.join(d, "memcoopd.conf")
        os.mkdir(os.path.join(d, "qmp"))
        with open(conf, "w") as f:
            f.write('socket "%s"\nqmp-dir "%s/qmp"\ntick 500ms\n'
                    'metrics off\n' % (sock, d))
        mgr = Manager(d)
        logp = os.path.join(d, "log")
        logf = open(logp, "w")
        st = os.fstat(logf.fileno())
        wd_usec = 2000000
        env = dict(os.environ, NOTIFY_SOCKET=mgr.path,
                   WATCHDOG_USEC=str(wd_usec),
                   JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
        env.pop("WATCHDOG_PID", None)
        p = subprocess.Popen([memcoopd, "-d", "-f", conf], env=env,
                             stdout=logf, stderr=logf)
        t_ready = mgr.wait("READY=1", 20)
        check(t_ready is not None, "READY=1 sent")
        check(os.path.exists(sock), "... after the control socket is up")
        mgr.pump(5)
        pets = mgr.pets(t_ready, t_ready + 5)
        gaps = [b - a for a, b in zip(pets, pets[1:])]
        check(len(pets) >= 3 and max(gaps) < wd_usec / 1e6,
              "WATCHDOG=1 every half period while the loop runs "
              "(%d pets in 5 s, largest gap %.2f s < 2 s)" %
              (len(pets), max(gaps) if gaps else -1))
        # a stalled loop: no pets for longer than the watchdog period
        os.kill(p.pid, signal.SIGSTOP)
        t_stop = time.monotonic()
        mgr.pump(4)
        last = max(mgr.pets(0, t_stop + 4))
        check(time.monotonic() - last > wd_usec / 1e6,
              "SIGSTOP: no pet for %.1f s > WatchdogSec: systemd would "
              "abort and restart it" % (time.monotonic() - last))
        os.kill(p.pid, signal.SIGCONT)
        t_cont = time.monotonic()
        mgr.pump(2)
        check(len(mgr.pets(t_cont, t_cont + 2)) >= 1,
              "SIGCONT: the loop pets again")
        # reload, with a broken file: a warning, and the reload completes
        with open(conf, "a") as f:
            f.write("no-such-keyword 1\n")
        n = len(mgr.msgs)
        os.kill(p.pid, signal.SIGHUP)
        mgr.pump(2)
        after = [m for _, m in mgr.msgs[n:] if "WATCHDOG=1" not in m]
        check(len(after) == 2 and after[0].startswith("RELOADING=1\n"
                                                      "MONOTONIC_USEC=") and
              after[1] == "READY=1",
              "SIGHUP: RELOADING=1 (with MONOTONIC_USEC), then READY=1: %r"
              % after)
        p.send_signal(signal.SIGTERM)
        rc = p.wait(20)
        mgr.pump(0.2)
        check(any(m == "STOPPING=1" for _, m in mgr.msgs),
              "SIGTERM: STOPPING=1")
        check(rc == 0, "memcoopd exits 0")
        logf.close()
        lines = open(logp).read().splitlines()
        print("\n".join(lines))
        check(len(lines) > 3 and all(re.match(r"<[0-7]>", l) for l in lines),
              "journal stream: every line has a <N> priority")
        check(any(l.startswith("<4>") and "no-such-keyword" in l
                  for l in lines), "the reload's error is a warning (<4>)")
        check(any(l.startswith("<6>") and "started" in l for l in lines),
              "start is info (<6>)")
        # $JOURNAL_STREAM naming another file: plain format
        r = subprocess.run([memcoopd, "-d", "-f", os.path.join(d, "nofile")],
                           env=env, capture_output=True, text=True,
                           timeout=30)
        check(r.returncode == 1 and
              re.match(r"\d\d:\d\d:\d\d\.\d{3} memcoopd: ", r.stderr),
              "JOURNAL_STREAM of another stream: timestamps, no prefix: %r"
              % r.stderr)
    finally:
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()
        shutil.rmtree(d)


def main():
    try:
        if len(sys.argv) == 4 and sys.argv[1] == "unit":
            unit(sys.argv[2], sys.argv[3])
        elif len(sys.argv) == 3 and sys.argv[1] == "notify":
            notify(sys.argv[2])
        else:
            print(__doc__)
            return 2
    except Fail as e:
        print("FAIL: %s" % e, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
