#!/usr/bin/env python3
"""memcoopd's libvirt backend against a real libvirtd.

The test starts virtlogd and libvirtd itself (`virtlogd -d`, `libvirtd -d`),
boots transient domains from the lab's kernel and initramfs (direct kernel
boot, TCG), runs memcoopd with `backend libvirt`, and checks through
memcoopctl --json:

  1. discovery: a running domain with a virtio memballoon becomes an online
     guest with its size, balloon actual, QEMU pid and (stats period set by
     memcoopd) usable memory; a domain with <memballoon model='none'> is not
     managed;
  2. targets: `memcoopctl set GUEST target` reaches the guest (virsh
     dommemstat actual follows) and never goes outside what was allowed:
     a target above the guest's size is refused (exit 1), and so is one
     above a max the operator set that the domain itself could take (the
     balloon stays under that max);
  3. lifecycle: a domain started after memcoopd appears (start event), a
     destroyed transient domain disappears (stop event);
  4. libvirtd killed and restarted: the guests go offline, come back online
     after the reconnection, memcoopd never exits;
  5. a QEMU stopped (SIGSTOP) holds its domain's job with a setmem that
     never returns: memcoopctl keeps answering within 2 s, the ticks go on
     and the other guest's target is applied; then that QEMU is killed
     (SIGKILL while its target is being applied): the guest disappears,
     memcoopd keeps running;
  6. SIGTERM: memcoopd exits 0.

Every domain has its serial console (ttyS0, the kernel's) in a file,
checked with the lab's check (mclab.console_problems) when the test ends.

The test runs in a mount namespace of its own with empty /run/libvirt,
/var/lib/libvirt and /var/log/libvirt, and its own
virtlogd and libvirtd (pid files in its directory): a libvirtd already
running on the host, or another run of this test, is neither seen nor
touched.  Everything started here (domains, QEMUs, memcoopd, libvirtd,
virtlogd) is killed on every exit path.  Exit 0 pass, 1 fail, 77 skip.
Usage: libvirt_agent.py MEMCOOPD MEMCOOPCTL
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import mclab

URI = "qemu:///system"
MEM_MIB = 320
# the QEMUs are found by name when libvirtd died before destroying them
PREFIX = "mctlv%d-" % os.getpid()
# private to the test's mount namespace (not /var/cache/libvirt: the QEMU
# capabilities cached there cost a minute to probe again on this host)
LIBVIRT_DIRS = ["/run/libvirt", "/var/lib/libvirt", "/var/log/libvirt"]
NS_ENV = "MEMCOOP_LIBVIRT_NS"
# what each guest writes to its console (ttyS0) once it runs: the console
# file is wired, so a clean one means something
CONSOLE_MARK = "MCTLV-CONSOLE-UP"


def sh(*argv, check=True, timeout=60):
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(argv), r.stderr.strip()))
    return r


def virsh(*args, check=True):
    # a first start may wait for libvirtd to probe QEMU's capabilities
    return sh("virsh", "-q", "-c", URI, *args, check=check,
              timeout=180 if args[0] == "create" else 60)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purposes
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Daemon:
    """virtlogd or libvirtd of this test, known by its pid file."""

    def __init__(self, prog, tmp):
        self.prog = prog
        self.pidfile = os.path.join(tmp, prog + ".pid")

    def start(self):
        sh(self.prog, "-d", "-p", self.pidfile)

    def pid(self):
        try:
            with open(self.pidfile) as f:
                pid = int(f.read().strip() or 0)
        except (OSError, ValueError):
            return 0
        return pid if pid > 0 and pid_alive(pid) else 0

    def stop(self, timeout=30):
        pid = self.pid()
        if pid:
            os.kill(pid, signal.SIGTERM)
            try:
                wait("%s exit" % self.prog, lambda: not self.pid(), timeout)
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)


def private_libvirt_dirs():
    """In the test's own mount namespace: empty libvirt state dirs."""
    for d in LIBVIRT_DIRS:
        os.makedirs(d, exist_ok=True)
        sh("mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", d)
    q = "/var/lib/libvirt/qemu"
    os.makedirs(q)
    shutil.chown(q, "libvirt-qemu", "libvirt-qemu")
    os.chmod(q, 0o751)


def wait(what, fn, timeout, step=0.5):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = fn()
        if v:
            return v
        time.sleep(step)
    raise TimeoutError("timed out (%ds) waiting for %s" % (timeout, what))


def domain_xml(name, kernel, initrd, append, console, balloon=True):
    mb = ("<memballoon model='virtio'><stats period='2'/></memballoon>"
          if balloon else "<memballoon model='none'/>")
    mb += ("<serial type='file'><source path='%s'/><target port='0'/></serial>"
           % console)
    return """<domain type='qemu'>
  <name>%s</name>
  <memory unit='MiB'>%d</memory>
  <currentMemory unit='MiB'>%d</currentMemory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type>
    <kernel>%s</kernel><initrd>%s</initrd><cmdline>%s</cmdline></os>
  <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>%s</emulator>
    %s
  </devices>
</domain>
""" % (name, MEM_MIB, MEM_MIB, kernel, initrd, append,
       shutil.which("qemu-system-x86_64"), mb)


class Agent:
    def __init__(self, memcoopd, memcoopctl, tmp):
        self.ctl = memcoopctl
        self.sock = os.path.join(tmp, "memcoopd.sock")
        self.log = os.path.join(tmp, "memcoopd.log")
        conf = os.path.join(tmp, "memcoopd.conf")
        with open(conf, "w") as f:
            f.write('backend libvirt\nlibvirt-uri "%s"\nsocket "%s"\n'
                    'tick 1s\nstats-period 2\nauto no\nksm unmanaged\nguest-min 128M\n'
                    'metrics off\nrestore-on-exit yes\nstate-dir "%s/state"\n'
                    % (URI, self.sock, tmp))
        self.logf = open(self.log, "w")
        self.proc = subprocess.Popen([memcoopd, "-d", "-f", conf],
                                     stdout=self.logf, stderr=subprocess.STDOUT)

    def status(self):
        r = sh(self.ctl, "-s", self.sock, "--json", "status", check=False)
        if r.returncode != 0:
            return None
        return json.loads(r.stdout)

    def guest(self, name):
        st = self.status()
        if st is None:
            return None
        for g in st["guests"]:
            if g["name"] == name:
                return g
        return None

    def alive(self):
        return self.proc.poll() is None

    def logtext(self):
        self.logf.flush()
        with open(self.log) as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode


def dommem_actual(name):
    r = virsh("dommemstat", name, check=False)
    for line in r.stdout.splitlines():
        k, _, v = line.strip().partition(" ")
        if k == "actual":
            return int(v) * 1024
    return 0


def check_consoles(consoles, marked):
    """The lab's console check on each domain's serial console file; the
    domains in @marked ran long enough to have written CONSOLE_MARK (b and
    c are destroyed or killed as soon as they are online, often before
    their kernel prints anything)."""
    fails = []
    for name, path in consoles.items():
        try:
            with open(path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError as e:
            fails.append("console of %s: %s" % (name, e))
            continue
        if name in marked and CONSOLE_MARK not in text:
            fails.append("console of %s: no %s from the guest (%d bytes)" % (
                name, CONSOLE_MARK, len(text)))
        bad = mclab.console_problems(text)
        if bad:
            fails.append("kernel problem in domain %s:\n  %s\n%s" % (
                name, "\n  ".join(bad[:20]), "\n".join(text.splitlines()[-60:])))
        else:
            print("console of %s: %d lines, clean" % (name, len(text.splitlines())))
    return fails


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    memcoopd, memcoopctl = sys.argv[1:]
    if os.geteuid() != 0:
        return mclab.skip("libvirtd and QEMU domains need root")
    for prog in ("libvirtd", "virtlogd", "virsh", "unshare"):
        if shutil.which(prog) is None:
            return mclab.skip("%s is not installed" % prog)
    if os.environ.get(NS_ENV) != str(os.getppid()):
        # again, in a mount namespace of our own (see the docstring)
        env = dict(os.environ, **{NS_ENV: str(os.getpid())})
        p = subprocess.Popen(["unshare", "--mount", "--propagation", "private",
                              sys.executable] + sys.argv, env=env)
        for sg in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sg, lambda signum, frame: p.send_signal(signum))
        return p.wait()

    mclab.install_signal_handlers()
    fails = []
    agent = None
    tmp = mclab.mkdtemp("libvirt-agent")
    names = [PREFIX + x for x in ("a", "b", "nob", "c")]
    virtlogd = Daemon("virtlogd", tmp)
    libvirtd = Daemon("libvirtd", tmp)
    consoles = {}
    created = []        # domains started: their consoles are checked
    try:
        private_libvirt_dirs()
        virtlogd.start()
        libvirtd.start()
        wait("libvirtd", lambda: virsh("uri", check=False).returncode == 0, 30)

        kernel, initrd, append = mclab.boot_files(
            cmd=["sh", "-c", "echo %s > /dev/console; exec sleep 3600" % CONSOLE_MARK],
            driver="memcoop", dest=os.path.join(tmp, "initrd.cpio"))
        # QEMU runs as libvirt's qemu user: the boot files must be readable.
        os.chmod(tmp, 0o755)
        shutil.copy(kernel, os.path.join(tmp, "vmlinuz"))
        kernel = os.path.join(tmp, "vmlinuz")
        for p in (kernel, initrd):
            os.chmod(p, 0o644)
        xmls = {}
        for n in names:
            consoles[n] = os.path.join(tmp, n + ".console")
            open(consoles[n], "w").close()
            os.chmod(consoles[n], 0o666)        # QEMU runs as libvirt-qemu
            p = os.path.join(tmp, n + ".xml")
            with open(p, "w") as f:
                f.write(domain_xml(n, kernel, initrd, append, consoles[n],
                                   balloon=(n != PREFIX + "nob")))
            xmls[n] = p
        # a and nob run before memcoopd starts (discovery); b and c after.
        for n in (PREFIX + "a", PREFIX + "nob"):
            created.append(n)
            virsh("create", xmls[n])

        agent = Agent(memcoopd, memcoopctl, tmp)
        a = PREFIX + "a"
        g = wait("guest a online", lambda: (lambda x: x if x and x["state"] == "online" else None)(agent.guest(a)), 60)
        print("discovered: %s" % json.dumps(g))
        if g["maxmem"] != MEM_MIB << 20:
            fails.append("maxmem %d, domain has %d MiB" % (g["maxmem"], MEM_MIB))
        if g["qemu_pid"] <= 0 or not os.path.exists("/proc/%d" % g["qemu_pid"]):
            fails.append("no QEMU pid for %s" % a)
        if agent.guest(PREFIX + "nob") is not None:
            fails.append("domain without a virtio balloon was taken as a guest")
        # stats: the period memcoopd set makes the guest report usable memory
        g = wait("usable memory of a", lambda: (lambda x: x if x and x["usable"] > 0 and x["actual"] > 0 else None)(agent.guest(a)), 90)
        print("stats: actual %d MiB usable %d MiB" % (g["actual"] >> 20, g["usable"] >> 20))
        print("virsh dommemstat %s:\n%s" % (a, virsh("dommemstat", a, check=False).stdout))
        if not 0 < g["usable"] <= MEM_MIB << 20:
            fails.append("usable %d outside 0..%d MiB" % (g["usable"], MEM_MIB))

        # 2. a fixed target through memcoopctl reaches the guest
        r = sh(memcoopctl, "-s", agent.sock, "set", a, "target", "224M", check=False)
        if r.returncode != 0:
            fails.append("memcoopctl set target: %s" % r.stderr.strip())
        else:
            try:
                act = wait("balloon of a at 224 MiB",
                           lambda: (lambda v: v if abs(v - (224 << 20)) <= (4 << 20) else None)(dommem_actual(a)), 90)
                print("target 224M: virsh dommemstat actual %d MiB" % (act >> 20))
                g = wait("memcoopd sees actual", lambda: (lambda x: x if x and abs(x["actual"] - (224 << 20)) <= (4 << 20) else None)(agent.guest(a)), 30)
            except TimeoutError as e:
                fails.append(str(e) + " (dommemstat actual %d MiB)" % (dommem_actual(a) >> 20))
        # a target beyond the domain's memory is refused
        r = sh(memcoopctl, "-s", agent.sock, "set", a, "target", "4G", check=False)
        print("set target 4G: exit %d %s" % (r.returncode, (r.stderr or r.stdout).strip()[:120]))
        if r.returncode != 1 or "outside the allowed" not in r.stderr:
            fails.append("memcoopctl set target 4G (above the domain's %d MiB): exit %d, "
                         "not 1 with the allowed range" % (MEM_MIB, r.returncode))
        # a target above the operator's max, which the domain could take
        # (288M < 320M): refused, and the balloon stays under the max
        r = sh(memcoopctl, "-s", agent.sock, "set", a, "max", "256M", check=False)
        if r.returncode != 0:
            fails.append("memcoopctl set max 256M: exit %d %s" % (r.returncode, r.stderr.strip()))
        r = sh(memcoopctl, "-s", agent.sock, "set", a, "target", "288M", check=False)
        print("max 256M, set target 288M: exit %d %s" % (
            r.returncode, (r.stderr or r.stdout).strip()[:120]))
        if r.returncode != 1 or "outside the allowed" not in r.stderr:
            fails.append("memcoopctl set target 288M above max 256M: exit %d, not 1 "
                         "with the allowed range" % r.returncode)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 6:
            if dommem_actual(a) > (256 + 4) << 20:
                fails.append("a target above the operator's max was applied: "
                             "dommemstat actual %d MiB" % (dommem_actual(a) >> 20))
                break
            time.sleep(0.5)

        # 3. lifecycle events
        b = PREFIX + "b"
        created.append(b)
        virsh("create", xmls[b])
        wait("guest b online (start event)", lambda: (lambda x: x if x and x["state"] == "online" else None)(agent.guest(b)), 60)
        virsh("destroy", b)
        wait("guest b gone (stop event)", lambda: agent.guest(b) is None, 30)
        print("lifecycle: b appeared on start, disappeared on destroy")

        # 4. libvirtd killed and restarted under memcoopd
        os.kill(libvirtd.pid(), signal.SIGTERM)
        wait("libvirtd gone", lambda: not libvirtd.pid(), 30)
        wait("guest a offline", lambda: (lambda x: x if x and x["state"] == "offline" else None)(agent.guest(a)), 40)
        time.sleep(3)
        if not agent.alive():
            fails.append("memcoopd died when libvirtd stopped")
        libvirtd.start()
        wait("libvirtd back", lambda: virsh("uri", check=False).returncode == 0, 30)
        g = wait("guest a online again", lambda: (lambda x: x if x and x["state"] == "online" else None)(agent.guest(a)), 60)
        print("libvirtd restart: a back online, qemu pid %d" % g["qemu_pid"])
        if "reconnected" not in agent.logtext():
            fails.append("no reconnection logged")

        # 5. QEMU killed mid-operation
        c = PREFIX + "c"
        created.append(c)
        virsh("create", xmls[c])
        gc = wait("guest c online", lambda: (lambda x: x if x and x["state"] == "online" and x["qemu_pid"] > 0 else None)(agent.guest(c)), 60)
        # 5a. c's QEMU stopped (SIGSTOP): its setmem holds c's job and
        # never returns; a, memcoopctl and the ticks must not notice
        os.kill(gc["qemu_pid"], signal.SIGSTOP)
        t1 = time.monotonic()
        r = sh(memcoopctl, "-t", "5", "-s", agent.sock, "set", c, "target",
               "200M", check=False)
        if r.returncode != 0 or time.monotonic() - t1 > 3:
            fails.append("set target of the stopped c: exit %d after %.1f s" % (
                r.returncode, time.monotonic() - t1))
        st0 = agent.status()
        slow = 0
        for _ in range(6):
            t1 = time.monotonic()
            st = agent.status()
            if st is None or time.monotonic() - t1 > 2:
                slow += 1
            time.sleep(1)
        if slow or st is None or st0 is None or st["ticks"] - st0["ticks"] < 4:
            fails.append("with c's QEMU stopped: %d slow or failed status "
                         "calls, ticks %s -> %s" % (slow, st0 and st0["ticks"],
                                                     st and st["ticks"]))
        r = sh(memcoopctl, "-t", "5", "-s", agent.sock, "set", a, "target",
               "240M", check=False)
        try:
            wait("a's target reaches a while c's QEMU is stopped",
                 lambda: (lambda v: v if abs(v - (240 << 20)) <= (4 << 20) else None)(dommem_actual(a)), 60)
            print("c's QEMU stopped: memcoopctl, the ticks and a's target went on")
        except TimeoutError as e:
            fails.append(str(e) + " (exit %d %s)" % (r.returncode, r.stderr.strip()))
        os.kill(gc["qemu_pid"], signal.SIGKILL)
        wait("guest c gone after QEMU was killed", lambda: agent.guest(c) is None, 30)
        if not agent.alive():
            fails.append("memcoopd died when QEMU was killed")
        if agent.guest(a) is None or agent.guest(a)["state"] != "online":
            fails.append("guest a lost after c's QEMU was killed")
        print("QEMU of c killed: c removed, memcoopd alive")

        # 6. clean exit
        rc = agent.stop()
        if rc != 0:
            fails.append("memcoopd exit status %s on SIGTERM" % rc)
        agent_log = agent.logtext()
        agent = None
        for bad in ("AddressSanitizer", "Segmentation", "fatal"):
            if bad in agent_log:
                fails.append("memcoopd log has %r" % bad)
    except (RuntimeError, TimeoutError, mclab.LabError, subprocess.TimeoutExpired) as e:
        fails.append(str(e))
    finally:
        if agent is not None:
            rc = agent.stop()
            print("--- memcoopd log ---\n" + agent.logtext()[-4000:])
        for n in names:
            virsh("destroy", n, check=False)
        libvirtd.stop(15)
        virtlogd.stop(15)
        # QEMUs of our domains, if libvirtd died before destroying them
        r = sh("pgrep", "-f", "guest=" + PREFIX, check=False)
        for p in r.stdout.split():
            os.kill(int(p), signal.SIGKILL)
        fails += check_consoles({n: consoles[n] for n in created},
                                (PREFIX + "a", PREFIX + "nob"))
        mclab.cleanup_tmp(failed=bool(fails))
    for f in fails:
        print("FAIL: %s" % f)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    sys.exit(main())
