#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""memcoopd against a real QEMU guest through QMP, memcoopctl against the
running daemon.

usage: agent_qmp.py MEMCOOPD MEMCOOPCTL basic|pressure|killed|dir

basic     memcoopctl status/set/explain/set --dry-run/--json/exit codes,
          access control by SO_PEERCRED (root, the socket group, others), hostile control
          clients, Prometheus metrics, clean shutdown restoring the guest
          (restore-on-exit yes).
pressure  the automatic policy: a host short of memory (MemAvailable from
          a proc directory the test controls) makes memcoopd shrink the
          guest in rate-limited steps within its limits; a guest under
          pressure (a hog in the guest) is given memory back; every change
          is logged with its reason; no OOM kill in the guest.
killed    QEMU killed with SIGKILL while the balloon moves: memcoopd marks
          the guest offline and keeps serving; a new QEMU on the same
          socket path is picked up with the operator's settings intact.
restart   a restart during a squeeze leaves the guest where it is: SIGTERM
          keeps the balloon, the next memcoopd adopts the target from the
          state directory; `memcoopctl stop --restore` then gives it back
          in restore-step steps, waiting while the host is below its floor.
bounds    the control socket's bounds (a client that pipelines and never
          reads is throttled and dropped, root keeps slots among 64
          watchers, a status over 256 KiB is an error to the client),
          memcoopctl -t against a socket that never answers, a QMP socket
          that never greets, one that sends an event before its greeting
          (taken as an event, not a malformed reply), a missing qmp-dir
          seen by --check.
ksmstate  KSM's original settings survive SIGKILL (a fake ksm-sysfs
          directory: the host's KSM is not touched), and a running
          ksmtuned (in the proc directory memcoopd reads) leaves KSM
          unmanaged.
dir       qmp-dir: QEMUs (stopped before their first instruction, -S,
          so no guest boots) whose sockets are in a directory memcoopd
          watches: found at start and when they appear later, named after
          the file; one without a balloon device is probed and left
          alone; a socket removed takes its guest offline, a new QEMU on
          it brings it back with the operator's settings.

One guest at a time (CPU is scarce).  Exit 0 pass, 1 fail, 77 skip.
memcoopd's files (config, log, the fake /proc) are removed at the end,
or kept, and their path printed, when the test fails.
"""
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request

import mclab

MIB = 1 << 20


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)
    print("ok: " + what, flush=True)


class Agent:
    """memcoopd in the foreground with a config in a private directory."""

    def __init__(self, memcoopd, memcoopctl, conf_extra, guests):
        self.memcoopd, self.memcoopctl = memcoopd, memcoopctl
        self.dir = mclab.mkdtemp("agent-qmp")
        os.chmod(self.dir, 0o755)
        self.sock = os.path.join(self.dir, "ctl.sock")
        self.log_path = os.path.join(self.dir, "memcoopd.log")
        self.proc_dir = os.path.join(self.dir, "proc")
        os.makedirs(os.path.join(self.proc_dir, "pressure"))
        self.set_host(avail_mib=16384)
        self.port = 19000 + os.getpid() % 1000
        self.state_dir = os.path.join(self.dir, "state")
        conf = ['socket "%s"' % self.sock,
                'state-dir "%s"' % self.state_dir,
                "socket-group nogroup",
                "tick 1s",
                "stats-period 1",
                'proc "%s"' % self.proc_dir,
                "metrics 127.0.0.1:%d" % self.port] + conf_extra
        for name, path, settings in guests:
            conf.append("guest %s {" % name)
            conf.append('\tqmp "%s"' % path)
            conf += ["\t" + s for s in settings]
            conf.append("}")
        self.conf = os.path.join(self.dir, "memcoopd.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(conf) + "\n")
        r = subprocess.run([memcoopd, "--check", "-f", self.conf],
                           capture_output=True, text=True)
        check(r.returncode == 0, "memcoopd --check accepts the test config"
              + ("" if r.returncode == 0 else ": " + r.stderr))
        self.logf = open(self.log_path, "w")
        self.start()

    def start(self):
        """memcoopd (again) on the same config, state and log."""
        if os.path.exists(self.sock):   # left by one killed with SIGKILL
            os.unlink(self.sock)
        self.p = subprocess.Popen([self.memcoopd, "-d", "-v", "-f", self.conf],
                                  stdout=self.logf, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while not os.path.exists(self.sock):
            if self.p.poll() is not None or time.time() > deadline:
                self.stop()
                raise Fail("memcoopd did not start:\n" + self.log())
            time.sleep(0.1)

    def set_host(self, avail_mib, psi=0.0):
        """The host's MemAvailable and PSI as memcoopd will read them."""
        tmp = os.path.join(self.proc_dir, "meminfo.tmp")
        with open(tmp, "w") as f:
            f.write("MemTotal:       %d kB\nMemFree:        %d kB\n"
                    "MemAvailable:   %d kB\nSwapFree:       0 kB\n" %
                    (32768 * 1024, avail_mib * 1024, avail_mib * 1024))
        os.rename(tmp, os.path.join(self.proc_dir, "meminfo"))
        tmp = os.path.join(self.proc_dir, "pressure", "memory.tmp")
        with open(tmp, "w") as f:
            f.write("some avg10=%.2f avg60=0.00 avg300=0.00 total=1000\n"
                    "full avg10=0.00 avg60=0.00 avg300=0.00 total=10\n" % psi)
        os.rename(tmp, os.path.join(self.proc_dir, "pressure", "memory"))

    def log(self):
        self.logf.flush()
        return open(self.log_path).read()

    def ctl(self, *args, user=None):
        argv = [self.memcoopctl, "-s", self.sock] + list(args)
        if user is not None:
            argv = ["setpriv", "--reuid", str(user[0]), "--regid",
                    str(user[1]), "--clear-groups"] + argv
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        return r.returncode, r.stdout, r.stderr

    def status(self, guest=None):
        rc, out, err = self.ctl("status", "--json", *([guest] if guest else []))
        if rc != 0:
            raise Fail("memcoopctl status failed (%d): %s" % (rc, err))
        st = json.loads(out)
        return st if guest is None else st["guests"][0]

    def wait_guest(self, name, pred, what, timeout=60):
        deadline = time.time() + timeout
        g = None
        while time.time() < deadline:
            self.alive()
            rc, out, err = self.ctl("status", "--json", name)
            if rc == 5:         # not known yet (QMP still connecting)
                time.sleep(0.3)
                continue
            if rc != 0:
                raise Fail("memcoopctl status failed (%d): %s" % (rc, err))
            g = json.loads(out)["guests"][0]
            if pred(g):
                print("ok: " + what, flush=True)
                return g
            time.sleep(0.5)
        raise Fail("%s: timeout; last status %s" % (what, json.dumps(g)))

    def alive(self):
        if self.p.poll() is not None:
            raise Fail("memcoopd exited (%d):\n%s" % (self.p.returncode,
                                                     self.log()))

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                return self.p.wait(20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                raise Fail("memcoopd did not exit on SIGTERM")
        return self.p.returncode


def wait_actual(g, mib, tol=8, timeout=90):
    deadline = time.time() + timeout
    a = None
    while time.time() < deadline:
        a = g.balloon_actual() // MIB
        if abs(a - mib) <= tol:
            return a
        time.sleep(0.5)
    raise Fail("balloon actual %s MiB, wanted %d" % (a, mib))


def raw_client(path, data, read=True):
    """Send raw bytes to the control socket; return what came back."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    try:
        s.sendall(data)
    except OSError:
        pass
    got = b""
    if read:
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                got += b
        except (socket.timeout, OSError):
            pass
    s.close()
    return got


def hdr(typ, payload, version=1, magic=0x4c54434d, length=None):
    return struct.pack("<IHHII", magic, version, typ,
                       len(payload) if length is None else length, 1) + payload


def scenario_basic(memcoopd, memcoopctl):
    with mclab.Guest(mem=512, qmp_extra=True, timeout=300, name="vm1") as g:
        g.start("mct-agenthog")
        g.wait_for(r"READY", timeout=180)
        # "busy" is the lab's own QMP socket, which already has its
        # client: memcoopd must wait for it without stalling anything
        a = Agent(memcoopd, memcoopctl, ["guest-min 256M", "restore-on-exit yes"],
                  [("vm1", g.qmp_path2, ["weight 150"]),
                   ("busy", g.qmp_path, [])])
        try:
            st = a.wait_guest("vm1", lambda x: x["state"] == "online" and
                              x["actual"] == 512 * MIB and x["usable"] > 0,
                              "guest online with balloon actual and stats")
            check(st["qemu_pid"] == g.qemu_pid, "QEMU pid from SO_PEERCRED")
            check(st["maxmem"] == 512 * MIB, "guest size from QMP")
            check(st["weight"] == 150, "weight from the config")

            rc, out, err = a.ctl("status")
            check(rc == 0 and "vm1" in out and "online" in out and
                  "GUEST" in out, "status table")
            rc, out, err = a.ctl("set", "vm1", "target", "384M")
            check(rc == 0, "set target 384M: " + out.strip() + err)
            wait_actual(g, 384)
            print("ok: balloon reached 384 MiB", flush=True)
            a.wait_guest("vm1", lambda x: x["target"] == 384 * MIB and
                         x["mode"] == "fixed" and
                         abs(x["actual"] - 384 * MIB) <= 8 * MIB,
                         "status shows target and actual 384M, mode fixed")
            check(re.search(r"guest vm1: target 512M -> 384M: operator set "
                            r"target 384M", a.log()) is not None,
                  "the change is logged with its reason")

            rc, out, err = a.ctl("set", "vm1", "target", "100M")
            check(rc == 1 and "outside the allowed 256M..512M" in err,
                  "target below guest-min refused with the range (rc 1)")
            rc, out, err = a.ctl("set", "vm1", "target", "4G")
            check(rc == 1, "target above the guest's memory refused")
            rc, out, err = a.ctl("set", "nosuch", "weight", "5")
            check(rc == 5 and "no guest named" in err, "unknown guest: rc 5")
            rc, out, err = a.ctl("set", "vm1", "colour", "blue")
            check(rc == 2, "unknown setting: usage error rc 2")
            rc, out, err = a.ctl("frobnicate")
            check(rc == 2 and "usage" in err, "unknown command: usage rc 2")
            # explain and set --dry-run: read-only, change nothing
            rc, out, err = a.ctl("explain", "vm1", user=(65534, 65534))
            check(rc == 0 and "now: fixed target set by the operator" in out
                  and "operator set target 384M" in out,
                  "explain says the mode and the last reason: " + out + err)
            rc, out, err = a.ctl("set", "--dry-run", "vm1", "target", "448M",
                                 user=(65534, 65534))
            check(rc == 0 and "would set the target to 448M" in out and
                  "nothing was changed" in out,
                  "set --dry-run shows the next target: " + out + err)
            rc, out, err = a.ctl("set", "--dry-run", "vm1", "target", "100M")
            check(rc == 1 and "outside the allowed" in err,
                  "set --dry-run checks as set does")
            time.sleep(1.5)
            check(abs(g.balloon_actual() // MIB - 384) <= 8,
                  "refused requests did not move the balloon")

            # access control: group members read, only root changes
            rc, out, err = a.ctl("status", "--json", user=(65534, 65534))
            check(rc == 0 and json.loads(out)["guests"][0]["name"] == "vm1",
                  "socket-group member may read")
            rc, out, err = a.ctl("set", "vm1", "weight", "7",
                                 user=(65534, 65534))
            check(rc == 4 and "only root" in err,
                  "socket-group member may not change (rc 4)")
            rc, out, err = a.ctl("status", user=(4242, 4242))
            check(rc == 4, "a user outside the group is refused (rc 4)")
            check(a.status("vm1")["weight"] == 150, "weight unchanged")

            # hostile control clients: the daemon answers or drops them
            raw_client(a.sock, b"\xff" * 64)
            raw_client(a.sock, hdr(1, b"{}", magic=0x12345678))
            raw_client(a.sock, hdr(1, b"", length=0xffffffff))
            raw_client(a.sock, hdr(2, b"{}"))            # no hello first
            got = raw_client(a.sock, hdr(1, b'{"version":1}') +
                             hdr(2, b'{"guest":') + hdr(2, b"\x00\x01"))
            check(len(got) >= 16 and struct.unpack("<IHHII", got[:16])[2]
                  == 0x100, "hello answered before the junk")
            raw_client(a.sock, hdr(1, b'{"version":1}') + b"A" * 300000,
                       read=False)
            socks = [socket.socket(socket.AF_UNIX) for _ in range(80)]
            for s in socks:
                try:
                    s.connect(a.sock)
                except OSError:
                    pass
            for s in socks:
                s.close()
            time.sleep(0.5)     # let memcoopd see the 80 closes
            a.alive()
            rc, out, err = a.ctl("status")
            check(rc == 0, "memcoopd serves after hostile clients (%d %s)" % (rc, err))

            # watch: one status per tick until the client goes
            w = subprocess.Popen([memcoopctl, "-s", a.sock, "watch", "vm1",
                                  "--json"], stdout=subprocess.PIPE,
                                 text=True)
            time.sleep(3.5)
            w.terminate()
            lines = w.communicate(timeout=10)[0].splitlines()
            check(len(lines) >= 3 and all(
                json.loads(x)["guests"][0]["name"] == "vm1" for x in lines),
                "watch --json streams one status per tick (%d lines)" %
                len(lines))

            # the busy socket: waited for, reported, never online
            check(a.status("busy")["state"] == "offline" and
                  "qmp busy: no greeting after 5s" in a.log(),
                  "a QMP socket with another client: offline, reported")

            # metrics
            body = urllib.request.urlopen(
                "http://127.0.0.1:%d/metrics" % a.port, timeout=10).read()
            body = body.decode()
            check(re.search(r'memcoop_guest_target_bytes\{guest="vm1"\} %d'
                            % (384 * MIB), body) is not None,
                  "metrics: target series for vm1")
            check(re.search(r'memcoop_guest_usable_bytes\{guest="vm1"\} \d+',
                            body) is not None, "metrics: usable series")
            check("memcoop_host_mem_available_bytes 17179869184" in body,
                  "metrics: host MemAvailable")

            # SIGHUP: the file's guest settings and knobs apply at once;
            # a broken file changes nothing
            conf = open(a.conf).read()
            with open(a.conf, "w") as f:
                f.write(conf.replace("weight 150", "weight 222"))
            a.p.send_signal(signal.SIGHUP)
            a.wait_guest("vm1", lambda x: x["weight"] == 222,
                         "SIGHUP reload: weight 222 from the file", 10)
            with open(a.conf, "a") as f:
                f.write("bogus-keyword 1\n")
            a.p.send_signal(signal.SIGHUP)
            time.sleep(1)
            check("configuration unchanged" in a.log() and
                  a.status("vm1")["weight"] == 222,
                  "SIGHUP with a broken file: logged, nothing changed")
            with open(a.conf, "w") as f:
                f.write(conf)

            # back to automatic mode, then a clean shutdown
            rc, out, err = a.ctl("set", "vm1", "mode", "auto")
            check(rc == 0, "set mode auto")
            rc, out, err = a.ctl("set", "vm1", "max", "448M")
            check(rc == 0, "set max 448M")
            for _ in range(6):
                t = a.status("vm1")["target"]
                check(256 * MIB <= t <= 448 * MIB,
                      "auto: target %dM within 256M..448M" % (t // MIB))
                time.sleep(0.5)
            rc = a.stop()
            check(rc == 0, "memcoopd exits 0 on SIGTERM")
            check("stop: paced restore to the upper limit" in a.log(),
                  "shutdown restore (restore-on-exit yes) logged")
            wait_actual(g, 448)
            print("ok: guest restored to its upper limit (448M) at exit",
                  flush=True)
            check(not os.path.exists(a.sock), "control socket removed")
            g.send("exit")
            check(g.wait_exit(timeout=60) == 0, "guest program exit 0")
        finally:
            a.stop()
            if os.environ.get("V"):
                print(a.log())


def scenario_pressure(memcoopd, memcoopctl):
    with mclab.Guest(mem=768, qmp_extra=True, timeout=400, name="vm1",
                     append="psi=1") as g:
        g.start("mct-agenthog")
        g.wait_for(r"READY", timeout=180)
        a = Agent(memcoopd, memcoopctl,
                  ["host-floor 1G", "host-comfort 2G", "guest-min 256M",
                   "guest-reserve 96M", "guest-slack 96M", "step-max 64M",
                   "step-min 8M", "hold 4s", "calm-ticks 2"],
                  [("vm1", g.qmp_path2, ["min 384M"])])
        try:
            a.wait_guest("vm1", lambda x: x["state"] == "online" and
                         x["usable"] > 0, "guest online with stats")
            # the host is short: memcoopd takes from the guest
            a.set_host(avail_mib=600, psi=25.0)
            st = a.wait_guest("vm1", lambda x: 0 < x["target"] < 768 * MIB,
                              "host short: guest target lowered", 30)
            # the policy takes only from a guest with spare (MemAvailable
            # above guest-reserve + 2 * guest-slack = 288M); it stops at the
            # min or where the guest's spare runs out, whichever comes first
            spare_above = (96 + 2 * 96) * MIB
            targets = []
            steady = None
            deadline = time.time() + 60
            while time.time() < deadline:
                st = a.status("vm1")
                t = st["target"]
                if not targets or targets[-1] != t:
                    targets.append(t)
                    steady = None
                if t == 384 * MIB:
                    break
                # no spare left: the balloon is there and fresh stats
                # say so, for longer than calm-ticks and a stats period
                if abs(st["actual"] - t) <= 8 * MIB and \
                        0 < st["usable"] <= spare_above:
                    if steady is None:
                        steady = time.time()
                    elif time.time() - steady >= 6:
                        break
                else:
                    steady = None
                time.sleep(0.3)
            # every change, from the log (polling could miss some)
            shrinks = re.findall(r"guest vm1: target (\d+)M -> (\d+)M: -.*"
                                 r"guest MemAvailable (\d+)M, spare", a.log())
            changes = [(int(x), int(y)) for x, y, _ in shrinks]
            steps = [x - y for x, y in changes]
            check(min(targets) >= 384 * MIB and
                  all(y >= 384 for x, y in changes),
                  "never below the min (384M)")
            check(len(steps) >= 3 and all(0 < s <= 64 for s in steps),
                  "rate-limited steps of at most 64M: %s" % steps)
            check(all(int(av) > spare_above // MIB for _, _, av in shrinks),
                  "shrunk only while the guest had spare: %s" %
                  [int(av) for _, _, av in shrinks])
            low = targets[-1] // MIB
            check(low == 384 or steady is not None and
                  time.time() - steady >= 6,
                  "shrunk down to the min or until the guest's spare ran "
                  "out (stopped at %dM, guest MemAvailable %dM)" %
                  (low, st["usable"] // MIB))
            check(low == 384 or changes and changes[-1][1] == low,
                  "the last logged shrink is where it stopped")
            wait_actual(g, low, tol=16)
            print("ok: balloon followed to %dM" % low, flush=True)
            check(re.search(r"guest vm1: target \d+M -> \d+M: -\d+M: "
                            r"host (MemAvailable 6\d\dM < floor 1024M|memory PSI)",
                            a.log()) is not None,
                  "shrinks logged with the host's reason")

            # the host recovers; the guest comes under pressure
            a.set_host(avail_mib=8192)
            # a workload that grows by 16M every half second
            for mib in range(16, 161, 16):
                g.send("hold %d" % mib)
                g.wait_for(r"HOLD %d\n" % mib, timeout=60)
                time.sleep(0.5)
            st = a.wait_guest("vm1", lambda x: x["target"] > low * MIB,
                              "guest under pressure: given memory", 60)
            check(re.search(r"guest vm1: target %dM -> \d+M: \+\d+M: guest "
                            r"(MemAvailable|major faults|swapping)" % low,
                            a.log()) is not None,
                  "growth logged with the guest's reason")
            # no flapping: once grown, the target does not go down again
            # while the host is comfortable
            seen = []
            for _ in range(20):
                seen.append(a.status("vm1")["target"])
                time.sleep(0.5)
            check(all(seen[i] <= seen[i + 1] for i in range(len(seen) - 1)),
                  "no flapping while the guest is under pressure: %s" %
                  [s // MIB for s in seen])
            g.send("hold 0")
            g.wait_for(r"HOLD 0", timeout=60)
            g.send("exit")
            check(g.wait_exit(timeout=60) == 0, "guest program exit 0")
            check("Out of memory" not in g.console and
                  "oom-kill" not in g.console, "no OOM kill in the guest")
            check(a.stop() == 0, "memcoopd exits 0")
        finally:
            a.stop()
            if os.environ.get("V"):
                print(a.log())


def scenario_killed(memcoopd, memcoopctl):
    link_dir = mclab.mkdtemp("agent-qmp-link")
    link = os.path.join(link_dir, "vm1.qmp")
    a = None
    try:
        with mclab.Guest(mem=512, qmp_extra=True, timeout=300, name="vm1") as g:
            g.start("mct-agenthog")
            g.wait_for(r"READY", timeout=180)
            os.symlink(g.qmp_path2, link)
            a = Agent(memcoopd, memcoopctl, ["guest-min 128M"],
                      [("vm1", link, [])])
            a.wait_guest("vm1", lambda x: x["state"] == "online" and
                         x["usable"] > 0, "guest online")
            rc, out, err = a.ctl("set", "vm1", "weight", "321")
            check(rc == 0, "weight set before the kill")
            rc, out, err = a.ctl("set", "vm1", "target", "200M")
            check(rc == 0, "target 200M (the balloon starts moving)")
            time.sleep(0.3)
            os.kill(g.qemu_pid, signal.SIGKILL)
            a.wait_guest("vm1", lambda x: x["state"] == "offline",
                         "QEMU killed mid-balloon: guest offline", 30)
            a.alive()
            # requests for an offline guest: answered, nothing crashes
            rc, out, err = a.ctl("set", "vm1", "target", "300M")
            check(rc == 0, "settings accepted while offline")
            rc, out, err = a.ctl("status")
            check(rc == 0 and "offline" in out, "status while offline")
            g.check_console()   # what the guest said before it was killed
        os.unlink(link)
        time.sleep(2)
        a.alive()
        with mclab.Guest(mem=512, qmp_extra=True, timeout=300, name="vm1") as g2:
            g2.start("mct-agenthog")
            g2.wait_for(r"READY", timeout=180)
            os.symlink(g2.qmp_path2, link)
            st = a.wait_guest("vm1", lambda x: x["state"] == "online" and
                              x["qemu_pid"] == g2.qemu_pid,
                              "a new QEMU on the same path: back online", 60)
            check(st["weight"] == 321 and st["mode"] == "fixed",
                  "the operator's settings survived QEMU's death")
            rc, out, err = a.ctl("set", "vm1", "target", "320M")
            check(rc == 0, "a new target for the new QEMU")
            wait_actual(g2, 320)
            print("ok: the new guest's balloon reached 320M", flush=True)
            # kill it again, this time during a stats poll storm
            for _ in range(5):
                a.ctl("status")
            os.kill(g2.qemu_pid, signal.SIGKILL)
            a.wait_guest("vm1", lambda x: x["state"] == "offline",
                         "second kill: offline again", 30)
            g2.check_console()
        check(a.stop() == 0, "memcoopd survived and exits 0")
        check("qmp vm1: disconnected" in a.log(), "disconnects logged")
    finally:
        if a is not None:
            a.stop()
            if os.environ.get("V"):
                print(a.log())


def paused_qemu(path, balloon, mib=384):
    """A QEMU stopped before its first instruction (-S), with a QMP
    server socket at @path: enough for memcoopd's QMP side, no boot."""
    argv = [shutil.which("qemu-system-x86_64") or "qemu-system-x86_64",
            "-S", "-machine", "pc", "-accel", "tcg", "-m", str(mib),
            "-nodefaults", "-no-user-config", "-display", "none",
            "-qmp", "unix:%s,server=on,wait=off" % path]
    if balloon:
        argv += ["-device", "virtio-balloon-pci,id=balloon0"]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.STDOUT, preexec_fn=mclab._child_setup)
    deadline = time.time() + 30
    while not os.path.exists(path):
        if p.poll() is not None or time.time() > deadline:
            raise Fail("QEMU did not make its QMP socket %s (status %s)" % (path, p.poll()))
        time.sleep(0.1)
    return p


def guest_names(a):
    return {g["name"]: g for g in a.status()["guests"]}


def wait_for(what, fn, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            print("ok: " + what, flush=True)
            return v
        time.sleep(0.3)
    raise Fail("%s: timeout" % what)


def scenario_dir(memcoopd, memcoopctl):
    qdir = mclab.mkdtemp("agent-qmp-dir")
    qemus = []
    a = None
    try:
        vma_path = os.path.join(qdir, "vma.qmp")
        qemus.append(paused_qemu(vma_path, True))
        qemus.append(paused_qemu(os.path.join(qdir, "nob.qmp"), False))
        with open(os.path.join(qdir, "notes.qmp"), "w") as f:
            f.write("not a socket\n")
        a = Agent(memcoopd, memcoopctl, ['qmp-dir "%s"' % qdir, "guest-min 128M"], [])
        st = a.wait_guest("vma", lambda x: x["state"] == "online",
                          "a QEMU in qmp-dir at start: guest vma online", 30)
        check(st["maxmem"] == 384 * MIB and st["qemu_pid"] == qemus[0].pid,
              "its size from QMP (384M) and its pid from SO_PEERCRED")
        wait_for("QEMU without a balloon probed and reported",
                 lambda: "qmp nob: no virtio-balloon device" in a.log())
        names = guest_names(a)
        check(sorted(names) == ["vma"],
              "QEMU without a balloon and a plain file are no guests: %s" % sorted(names))
        # a QEMU that appears later (socket named .sock)
        qemus.append(paused_qemu(os.path.join(qdir, "vmb.sock"), True))
        wait_for("a QEMU appearing later: guest vmb online",
                 lambda: guest_names(a).get("vmb", {}).get("state") == "online")
        # vma's QEMU dies and its socket goes
        rc, out, err = a.ctl("set", "vma", "weight", "222")
        check(rc == 0, "weight set for vma")
        os.kill(qemus[0].pid, signal.SIGKILL)
        qemus[0].wait()
        os.unlink(vma_path)
        a.wait_guest("vma", lambda x: x["state"] == "offline",
                     "socket removed: vma offline, still listed", 30)
        wait_for("the removal is logged (next scan)",
                 lambda: "qmp vma: socket %s is gone" % vma_path in a.log(), 10)
        check(guest_names(a)["vmb"]["state"] == "online", "vmb unaffected")
        # a new QEMU on the same path
        qemus.append(paused_qemu(vma_path, True))
        st = a.wait_guest("vma", lambda x: x["state"] == "online" and
                          x["qemu_pid"] == qemus[-1].pid,
                          "a new QEMU on vma's socket: online again", 30)
        check(st["weight"] == 222, "the operator's weight survived")
        a.alive()
        check(a.stop() == 0, "memcoopd exits 0")
    finally:
        if a is not None:
            a.stop()
            if os.environ.get("V"):
                print(a.log())
        for p in qemus:
            if p.poll() is None:
                p.kill()
                p.wait()


def target_file(a):
    path = os.path.join(a.state_dir, "targets")
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


def scenario_restart(memcoopd, memcoopctl):
    with mclab.Guest(mem=512, qmp_extra=True, timeout=300, name="vm1") as g:
        g.start("mct-agenthog")
        g.wait_for(r"READY", timeout=180)
        a = Agent(memcoopd, memcoopctl,
                  ["host-floor 1G", "host-comfort 2G", "guest-min 256M",
                   "guest-reserve 64M", "guest-slack 64M", "step-max 64M",
                   "step-min 8M", "hold 2s", "calm-ticks 1",
                   "restore-step 48M", "restore-period 1s",
                   "restore-timeout 120s"],
                  [("vm1", g.qmp_path2, [])])
        try:
            a.wait_guest("vm1", lambda x: x["state"] == "online" and
                         x["usable"] > 0, "guest online with stats", 90)
            a.set_host(avail_mib=700)           # below the floor
            a.wait_guest("vm1", lambda x: 0 < x["target"] <= 448 * MIB,
                         "host short: the guest is squeezed", 60)
            # between floor and comfort: the policy holds it where it is
            a.set_host(avail_mib=1500)
            t, since = None, time.time()
            while time.time() - since < 4:
                st = a.status("vm1")
                if st["target"] != t:
                    t, since = st["target"], time.time()
                time.sleep(0.3)
            target = t // MIB
            wait_actual(g, target, timeout=90)
            check(("vm1 %d %d\n" % (t, g.qemu_pid)) == target_file(a),
                  "the target (%dM) and QEMU's pid are in the state file" % target)
            # SIGTERM is a restart: nothing moves
            check(a.stop() == 0, "memcoopd exits 0 on SIGTERM")
            time.sleep(3)
            actual = g.balloon_actual() // MIB
            check(abs(actual - target) <= 8,
                  "after SIGTERM the guest stays at %dM (actual %dM)" % (target, actual))
            check("paced restore" not in a.log() and
                  "back to the upper limit" not in a.log(),
                  "no restore on SIGTERM")
            a.start()
            st = a.wait_guest("vm1", lambda x: x["state"] == "online" and
                              x["target"] != 0, "the new memcoopd sees the guest", 30)
            check(st["target"] == t and "adopted" in st["reason"],
                  "it adopted the target: %s" % json.dumps(st))
            time.sleep(4)
            st = a.status("vm1")
            actual = g.balloon_actual() // MIB
            check(st["target"] == t and abs(actual - target) <= 8,
                  "and the guest stays there (target %dM, actual %dM)" %
                  (st["target"] // MIB, actual))
            # a real stop, memory back: paced, and not below the floor
            a.set_host(avail_mib=1000)
            rc, out, err = a.ctl("stop", "--restore")
            check(rc == 0, "memcoopctl stop --restore (%d: %s)" % (rc, err))
            wait_for("restore waits while the host is below its floor",
                     lambda: "restore: host MemAvailable" in a.log(), 15)
            time.sleep(2)
            actual = g.balloon_actual() // MIB
            check(abs(actual - target) <= 8 and a.p.poll() is None,
                  "nothing restored below the floor (actual %dM)" % actual)
            t0 = time.time()
            a.set_host(avail_mib=4000)
            rc = a.p.wait(90)
            took = time.time() - t0
            check(rc == 0, "memcoopd exits 0 after the restore")
            steps = [(int(x), int(y)) for x, y in re.findall(
                r"guest vm1: target (\d+)M -> (\d+)M: stop: paced restore",
                a.log())]
            need = -(-(512 - target) // 48)
            check(len(steps) >= need and all(0 < y - x <= 48 for x, y in steps)
                  and steps[-1][1] == 512,
                  "restored in %d steps of at most 48M up to 512M: %s" % (len(steps), steps))
            check(took >= need - 1.5,
                  "one step per restore-period (%.1f s for %d steps)" % (took, need))
            wait_actual(g, 512, timeout=90)
            check(target_file(a) is None, "the state file is gone after the restore")
            g.send("exit")
            check(g.wait_exit(timeout=60) == 0, "guest program exit 0")
            g.check_console()
        finally:
            a.stop()
            if os.environ.get("V"):
                print(a.log())


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


WATCHERS = r"""
import socket, struct, sys, time
path = sys.argv[1]
def msg(t, p):
    return struct.pack("<IHHII", 0x4c54434d, 1, t, len(p), 1) + p
ok, socks = 0, []
for i in range(64):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(path)
        s.sendall(msg(1, b'{"version": 1}') + msg(6, b'{"guest": "g001"}'))
        if len(s.recv(16)) == 16:
            ok += 1
            socks.append(s)
    except OSError:
        pass
print(ok, flush=True)
sys.stdin.read()
"""


def scenario_bounds(memcoopd, memcoopctl):
    tmp = mclab.mkdtemp("agent-bounds")
    os.chmod(tmp, 0o755)
    a = None
    holders = []
    try:
        conf = os.path.join(tmp, "missing.conf")
        with open(conf, "w") as f:
            f.write('qmp-dir "%s/nope"\nsocket "%s/x.sock"\n' % (tmp, tmp))
        r = subprocess.run([memcoopd, "--check", "-f", conf],
                           capture_output=True, text=True, timeout=30)
        check(r.returncode == 1 and "nope" in r.stderr,
              "--check: a missing qmp-dir is an error (%d: %s)" %
              (r.returncode, r.stderr.strip()))
        # memcoopctl -t against a socket that accepts and never answers
        mute_ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        mute_ctl.bind(os.path.join(tmp, "mute.sock"))
        mute_ctl.listen(4)
        holders.append(mute_ctl)
        t0 = time.time()
        r = subprocess.run([memcoopctl, "-t", "2", "-s",
                            os.path.join(tmp, "mute.sock"), "status"],
                           capture_output=True, text=True, timeout=60)
        took = time.time() - t0
        check(r.returncode == 3 and "within 2 s" in r.stderr and took < 10,
              "memcoopctl -t 2 gives up on a daemon that never answers "
              "(%d after %.1f s: %s)" % (r.returncode, took, r.stderr.strip()))
        # a QMP socket that accepts and never greets
        qdir = os.path.join(tmp, "qmp")
        os.mkdir(qdir)
        mute_qmp = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        mute_qmp.bind(os.path.join(qdir, "mute.qmp"))
        mute_qmp.listen(4)
        holders.append(mute_qmp)
        # one that writes an event before its greeting (QEMU 7.2's RESUME
        # to a client accepted as the guest started)
        srv, _, early = mclab.fake_qmp(os.path.join(qdir, "early.qmp"), [
            b'{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "RESUME"}',
            b'{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, '
            b'"package": ""}, "capabilities": []}}'])
        holders.append(srv)
        # enough guests (offline, from the config) for a status > 256 KiB
        guests = [("g%03d" % i, "/nonexistent/g%03d.qmp" % i, [])
                  for i in range(1200)]
        a = Agent(memcoopd, memcoopctl, ['qmp-dir "%s"' % qdir], guests)
        rc, out, err = a.ctl("status")
        check(rc == 1 and "ask for one guest" in err,
              "a status over 256 KiB is an error to the client (%d: %s)" %
              (rc, err.strip()))
        rc, out, err = a.ctl("--json", "status", "g001")
        check(rc == 0 and json.loads(out)["guests"][0]["name"] == "g001",
              "the status of one guest still comes")
        wait_for("a QMP socket that never greets is given up",
                 lambda: "qmp mute: disconnected: no QMP greeting" in a.log(), 40)
        caps = b"qmp_capabilities" in early.get("first", b"")
        check(caps and "qmp early: malformed" not in a.log(),
              "an event before the QMP greeting is taken as an event: the "
              "greeting that follows is answered (%s), no malformed-reply "
              "warning" % caps)

        # a client that pipelines status requests and never reads
        rss0 = rss_kib(a.p.pid)
        req = hdr(2, b'{"guest": "g001"}')
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(a.sock)
        s.sendall(hdr(1, b'{"version": 1}'))
        s.setblocking(False)
        batch, sent, t0 = req * 1000, 0, time.time()
        while sent < 100000 and time.time() - t0 < 5:
            try:
                n = s.send(batch)
                sent += n // len(req)
            except BlockingIOError:
                time.sleep(0.05)
        rc, out, err = a.ctl("-t", "5", "status", "g001")
        check(rc == 0, "memcoopctl answered while a client does not read")
        rss1 = rss_kib(a.p.pid)
        check(sent < 100000 and rss1 - rss0 < 24 * 1024,
              "the non-reader is throttled: %d requests taken, daemon RSS "
              "+%d KiB" % (sent, rss1 - rss0))
        time.sleep(14)          # the write timeout (10 s)
        s.setblocking(True)
        s.settimeout(5)
        got, eof = 0, False
        try:
            while True:
                b = s.recv(1 << 20)
                if not b:
                    eof = True
                    break
                got += len(b)
        except ConnectionResetError:
            eof = True          # closed with our requests unread: RST
        except socket.timeout:
            pass
        s.close()
        check(eof and got < 4 * MIB,
              "and dropped: %d bytes then EOF (%s)" % (got, eof))

        # 64 watchers that are not root: root keeps its slots
        w = subprocess.Popen(["setpriv", "--reuid", "nobody", "--regid",
                              "nogroup", "--clear-groups", sys.executable,
                              "-c", WATCHERS, a.sock],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
        try:
            n = int(w.stdout.readline())
            check(n == 60, "60 of 64 unprivileged watchers accepted (%d)" % n)
            rc, out, err = a.ctl("-t", "5", "status", "g001")
            check(rc == 0, "root still gets in (%d: %s)" % (rc, err.strip()))
            nobody = (int(subprocess.check_output(["id", "-u", "nobody"])),
                      int(subprocess.check_output(["getent", "group", "nogroup"],
                                                  text=True).split(":")[2]))
            rc, out, err = a.ctl("-t", "5", "status", "g001", user=nobody)
            check(rc == 3, "another unprivileged client is refused (%d)" % rc)
        finally:
            w.stdin.close()
            w.wait(30)
        a.alive()
        check(a.stop() == 0, "memcoopd exits 0")
    finally:
        if a is not None:
            a.stop()
            if os.environ.get("V"):
                print(a.log())
        for h in holders:
            h.close()


KSM_FILES = {"run": "0", "pages_to_scan": "100", "sleep_millisecs": "20",
             "pages_shared": "0", "pages_sharing": "0", "pages_unshared": "0",
             "pages_volatile": "0", "full_scans": "0"}


def scenario_ksmstate(memcoopd, memcoopctl):
    fake = mclab.mkdtemp("agent-ksm-sysfs")
    for k, v in KSM_FILES.items():
        with open(os.path.join(fake, k), "w") as f:
            f.write(v + "\n")

    def run():
        with open(os.path.join(fake, "run")) as f:
            return f.read().strip()

    a = Agent(memcoopd, memcoopctl, ["ksm on", 'ksm-sysfs "%s"' % fake], [])
    try:
        wait_for("ksm on: memcoopd sets run=1", lambda: run() == "1", 20)
        orig = os.path.join(a.state_dir, "ksm.orig")
        with open(orig) as f:
            check("run 0\n" in f.read(), "the original run=0 is in %s" % orig)
        a.p.kill()
        a.p.wait()
        check(run() == "1", "after SIGKILL nobody put KSM back (run=1)")
        a.start()
        wait_for("the next memcoopd takes the originals from the state file",
                 lambda: "KSM settings of a previous memcoopd" in a.log(), 20)
        check(a.stop() == 0, "memcoopd exits 0")
        check(run() == "0" and not os.path.exists(orig),
              "on exit the originals are back (run=%s), the file removed" % run())
        # another KSM manager runs
        os.makedirs(os.path.join(a.proc_dir, "4242"))
        with open(os.path.join(a.proc_dir, "4242", "comm"), "w") as f:
            f.write("ksmtuned\n")
        a.start()
        wait_for("ksmtuned running: memcoopd leaves KSM alone",
                 lambda: "KSM is managed by ksmtuned (pid 4242)" in a.log(), 20)
        rc, out, err = a.ctl("ksm", "on")
        check(rc != 0 and "ksmtuned" in err,
              "memcoopctl ksm on is refused (%d: %s)" % (rc, err.strip()))
        time.sleep(2)
        check(run() == "0", "run untouched (%s)" % run())
        check(a.stop() == 0, "memcoopd exits 0")
    finally:
        a.stop()
        if os.environ.get("V"):
            print(a.log())


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    if os.geteuid() != 0:
        return mclab.skip("needs root (setpriv to test the socket's access control)")
    memcoopd, memcoopctl, which = sys.argv[1:]
    fn = {"basic": scenario_basic, "pressure": scenario_pressure,
          "killed": scenario_killed, "dir": scenario_dir,
          "restart": scenario_restart, "bounds": scenario_bounds,
          "ksmstate": scenario_ksmstate}.get(which)
    if fn is None:
        print(__doc__)
        return 2
    mclab.install_signal_handlers()
    rc = 1
    try:
        fn(memcoopd, memcoopctl)
        rc = 0
    except Fail as e:
        print("FAIL: %s" % e, flush=True)
    except mclab.LabError as e:
        print("FAIL (lab): %s" % e, flush=True)
    finally:
        mclab.cleanup_tmp(failed=rc != 0)
    if rc == 0:
        print("PASS", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
