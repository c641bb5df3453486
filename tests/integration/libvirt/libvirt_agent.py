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
     dommemstat actual follows) and never goes outside what was allowed;
  3. lifecycle: a domain started after memcoopd appears (start event), a
     destroyed transient domain disappears (stop event);
  4. libvirtd killed and restarted: the guests go offline, come back online
     after the reconnection, memcoopd never exits;
  5. QEMU killed mid-operation (SIGKILL while a target is being applied):
     the guest disappears, memcoopd keeps running;
  6. SIGTERM: memcoopd exits 0.

Everything started here (domains, QEMUs, memcoopd, libvirtd, virtlogd) is
killed on every exit path.  Exit 0 pass, 1 fail, 77 skip.
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
PREFIX = "mctlv-"


def sh(*argv, check=True, timeout=60):
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(argv), r.stderr.strip()))
    return r


def virsh(*args, check=True):
    return sh("virsh", "-q", "-c", URI, *args, check=check)


def pids_of(name):
    r = sh("pgrep", "-x", name, check=False)
    return [int(p) for p in r.stdout.split()]


def wait(what, fn, timeout, step=0.5):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = fn()
        if v:
            return v
        time.sleep(step)
    raise TimeoutError("timed out (%ds) waiting for %s" % (timeout, what))


def domain_xml(name, kernel, initrd, append, balloon=True):
    mb = ("<memballoon model='virtio'><stats period='2'/></memballoon>"
          if balloon else "<memballoon model='none'/>")
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
                    'metrics off\nrestore-on-exit yes\n' % (URI, self.sock))
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


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    memcoopd, memcoopctl = sys.argv[1:]
    if os.geteuid() != 0:
        print("SKIP: libvirtd and QEMU domains need root")
        return 77
    for prog in ("libvirtd", "virtlogd", "virsh"):
        if shutil.which(prog) is None:
            print("SKIP: %s is not installed" % prog)
            return 77
    if pids_of("libvirtd"):
        print("SKIP: a libvirtd is running already; this test starts and "
              "restarts its own")
        return 77

    mclab.install_signal_handlers()
    fails = []
    started_virtlogd = False
    agent = None
    tmp = mclab.mkdtemp("libvirt-agent")
    names = [PREFIX + x for x in ("a", "b", "nob", "c")]
    try:
        if not pids_of("virtlogd"):
            sh("virtlogd", "-d")
            started_virtlogd = True
        sh("libvirtd", "-d")
        wait("libvirtd", lambda: virsh("uri", check=False).returncode == 0, 30)

        kernel, initrd, append = mclab.boot_files(
            cmd=["sleep", "3600"], driver="memcoop", dest=os.path.join(tmp, "initrd.cpio"))
        # QEMU runs as libvirt's qemu user: the boot files must be readable.
        os.chmod(tmp, 0o755)
        shutil.copy(kernel, os.path.join(tmp, "vmlinuz"))
        kernel = os.path.join(tmp, "vmlinuz")
        for p in (kernel, initrd):
            os.chmod(p, 0o644)
        xmls = {}
        for n in names:
            p = os.path.join(tmp, n + ".xml")
            with open(p, "w") as f:
                f.write(domain_xml(n, kernel, initrd, append, balloon=(n != PREFIX + "nob")))
            xmls[n] = p
        # a and nob run before memcoopd starts (discovery); b and c after.
        virsh("create", xmls[PREFIX + "a"])
        virsh("create", xmls[PREFIX + "nob"])

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
        # a target beyond the domain's memory is refused or clamped, never applied
        r = sh(memcoopctl, "-s", agent.sock, "set", a, "target", "4G", check=False)
        time.sleep(3)
        if dommem_actual(a) > MEM_MIB << 20:
            fails.append("a target above the domain's memory was applied")
        print("set target 4G: exit %d %s" % (r.returncode, (r.stderr or r.stdout).strip()[:120]))

        # 3. lifecycle events
        b = PREFIX + "b"
        virsh("create", xmls[b])
        wait("guest b online (start event)", lambda: (lambda x: x if x and x["state"] == "online" else None)(agent.guest(b)), 60)
        virsh("destroy", b)
        wait("guest b gone (stop event)", lambda: agent.guest(b) is None, 30)
        print("lifecycle: b appeared on start, disappeared on destroy")

        # 4. libvirtd killed and restarted under memcoopd
        for p in pids_of("libvirtd"):
            os.kill(p, signal.SIGTERM)
        wait("libvirtd gone", lambda: not pids_of("libvirtd"), 30)
        wait("guest a offline", lambda: (lambda x: x if x and x["state"] == "offline" else None)(agent.guest(a)), 40)
        time.sleep(3)
        if not agent.alive():
            fails.append("memcoopd died when libvirtd stopped")
        sh("libvirtd", "-d")
        wait("libvirtd back", lambda: virsh("uri", check=False).returncode == 0, 30)
        g = wait("guest a online again", lambda: (lambda x: x if x and x["state"] == "online" else None)(agent.guest(a)), 60)
        print("libvirtd restart: a back online, qemu pid %d" % g["qemu_pid"])
        if "reconnected" not in agent.logtext():
            fails.append("no reconnection logged")

        # 5. QEMU killed mid-operation
        c = PREFIX + "c"
        virsh("create", xmls[c])
        gc = wait("guest c online", lambda: (lambda x: x if x and x["state"] == "online" and x["qemu_pid"] > 0 else None)(agent.guest(c)), 60)
        sh(memcoopctl, "-s", agent.sock, "set", c, "target", "200M", check=False)
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
        for p in pids_of("libvirtd"):
            os.kill(p, signal.SIGTERM)
        try:
            wait("libvirtd exit", lambda: not pids_of("libvirtd"), 15)
        except TimeoutError:
            for p in pids_of("libvirtd"):
                os.kill(p, signal.SIGKILL)
        if started_virtlogd:
            for p in pids_of("virtlogd"):
                os.kill(p, signal.SIGTERM)
        # QEMUs of our domains, if libvirtd died before destroying them
        r = sh("pgrep", "-f", "guest=" + PREFIX, check=False)
        for p in r.stdout.split():
            os.kill(int(p), signal.SIGKILL)
        mclab.cleanup_tmp()
    for f in fails:
        print("FAIL: %s" % f)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    sys.exit(main())
