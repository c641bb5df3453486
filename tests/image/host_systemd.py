"""memcoopd as a host operator runs it: installed from its package into
the Debian 12 image, started by systemd, upgraded with dpkg -i.

The image's tree (an overlay, as for the chroots) boots under
systemd-nspawn (--boot: systemd as PID 1, its own network namespace, so
the shipped config's metrics port is its own); the guest's second QMP
socket is bound in as /run/memcoop/qmp/NAME.qmp, the shipped config's
qmp-dir.  The only change to the shipped config is `auto no`, so that
only the operator moves the guest (the host this runs on may be short of
memory: the policy must not squeeze the guest meanwhile).

upgrade_restart(): memcoopctl sets a target, the guest follows, the guest
goes back to mode auto (which `auto no` holds still); then dpkg -i
of the same memcoopd repacked at a higher version (debs.repack).  The
maintainer scripts debhelper generated must restart the daemon (a new
MainPID, the new version installed, the unit active), and the restart
must not touch the guest: the new instance adopts the target from
/run/memcoop (RuntimeDirectoryPreserve), and the balloon, read by the test
through its own QMP socket, stays where it was (restore-on-exit no).

  python3 tests/image/host_systemd.py     a lab guest (initramfs) as the guest
"""

import json
import os
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lab"))
import debs  # noqa: E402
from debs import Failed, check, say  # noqa: E402
import images  # noqa: E402
import mclab  # noqa: E402

IMAGE = "debian12"
PACKAGES = ["libmemcoop0", "memcoopd"]
UPGRADE_SUFFIX = "+upgrade1"
MIB = 1 << 20


class Host:
    """The Debian 12 image with @debs installed, booted by systemd-nspawn."""

    def __init__(self, tmp, debs, binds):
        self.tmp = tmp
        self.upper = os.path.join(tmp, "host-overlay")
        self.log_path = os.path.join(tmp, "host-console.log")
        self.p = None
        images.ensure(IMAGE)
        rc, out = images.install_debs(IMAGE, self.upper, debs)
        check(rc == 0, "dpkg -i on the host image:\n%s" % out[-3000:])
        self.binds = binds

    def boot(self, timeout=120):
        lower = os.path.join(images.image_dir(IMAGE), "root")
        up = lambda s: shlex.quote(os.path.join(self.upper, s))  # noqa: E731
        merged = os.path.join(self.upper, "merged")
        script = "\n".join([
            "set -e", "mount --make-rprivate /",
            "mount -t overlay overlay -o lowerdir=%s,upperdir=%s,workdir=%s %s" % (
                shlex.quote(lower), up("upper"), up("work"), up("merged")),
            "exec systemd-nspawn -q --register=no --keep-unit --private-network "
            "--console=passive --machine=mchost%d -D %s %s --boot" % (
                os.getpid(), shlex.quote(merged),
                " ".join("--bind=%s:%s" % (shlex.quote(a), shlex.quote(b))
                         for a, b in self.binds))])
        env = dict(os.environ, PATH="/usr/sbin:/usr/bin:/sbin:/bin", LC_ALL="C.UTF-8")
        env.pop("TMPDIR", None)
        self.p = subprocess.Popen(["unshare", "--mount", "sh", "-c", script], env=env,
                                  stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        self.leader = None
        while self.leader is None:
            check(self.p.poll() is None, "systemd-nspawn exited %s:\n%s" % (
                self.p.returncode, self.log()))
            check(time.monotonic() < deadline, "no container init after %d s" % timeout)
            try:
                kids = open("/proc/%d/task/%d/children" % (self.p.pid, self.p.pid)).read()
                for k in kids.split():
                    if open("/proc/%s/comm" % k).read().strip() == "systemd":
                        self.leader = int(k)
            except OSError:
                pass
            time.sleep(0.2)
        while True:
            rc, out = self.sh("systemctl is-system-running")
            if out.strip() in ("running", "degraded"):
                return out.strip()
            check(time.monotonic() < deadline, "the container's systemd is %r after %d s:\n%s"
                  % (out.strip(), timeout, self.log()))
            time.sleep(0.5)

    def sh(self, script, timeout=300):
        """@script by sh in the container (all its namespaces, its root)."""
        r = subprocess.run(["nsenter", "-t", str(self.leader), "-m", "-u", "-i", "-n", "-p",
                            "-r", "-w", "sh", "-c", script],
                           env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8",
                                "DEBIAN_FRONTEND": "noninteractive"},
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=timeout)
        return r.returncode, r.stdout

    def log(self):
        try:
            return open(self.log_path, errors="replace").read()[-3000:]
        except OSError:
            return ""

    def stop(self):
        if self.p is None or self.p.poll() is not None:
            return
        self.p.terminate()      # nspawn: an orderly shutdown of the container
        try:
            self.p.wait(60)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def main_pid(host):
    rc, out = host.sh("systemctl show -P MainPID memcoopd.service")
    return int(out.strip() or 0)


def guest_status(host, name):
    """(state, target, reason, raw output) of guest @name, from memcoopctl."""
    rc, out = host.sh("memcoopctl -j status %s" % shlex.quote(name))
    try:
        g = json.loads(out)["guests"][0]
    except (ValueError, KeyError, IndexError):
        return None, None, "", out
    return g.get("state"), g.get("target"), g.get("reason", ""), out


def wait_until(what, cond, timeout):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        check(time.monotonic() < deadline, "%s: not after %d s" % (what, timeout))
        time.sleep(0.3)


def upgrade_restart(g, tmp, built, name, squeeze_mib, tolerance_mib=8):
    """memcoopd (packaged, under systemd in the Debian 12 image) squeezes
    guest @g (a running mclab.Guest with qmp_extra) to @squeeze_mib; then a
    newer memcoopd package is installed; the daemon restarts, the guest
    stays where it is."""
    t_all = time.monotonic()
    newdir = os.path.join(tmp, "newer")
    os.makedirs(newdir)
    newdeb, newver = debs.repack(built["memcoopd"], newdir, UPGRADE_SUFFIX)
    host = Host(tmp, [built[p] for p in PACKAGES],
                [(g.qmp_path2, "/run/memcoop/qmp/%s.qmp" % name),
                 (newdir, "/mnt/debs")])
    try:
        # the administrator's one change (a conffile edit, kept on upgrade)
        with open(os.path.join(host.upper, "upper", "etc", "memcoop",
                               "memcoopd.conf"), "a") as f:
            f.write("\n# deb-image: only the operator moves the guest\nauto no\n")
        state = host.boot()
        say("   host: Debian 12 under systemd-nspawn, systemd %s in %.0f s" % (
            state, time.monotonic() - t_all))
        wait_until("memcoopd.service active", lambda: host.sh(
            "systemctl is-active memcoopd.service")[1].strip() == "active", 60)
        wait_until("memcoopd sees guest %s online" % name,
                   lambda: guest_status(host, name)[0] == "online", 60)
        rc, out = host.sh("memcoopctl set %s target %dM" % (name, squeeze_mib))
        check(rc == 0, "memcoopctl set target: %s" % out)
        t0 = time.monotonic()
        g.wait_actual(squeeze_mib, timeout=180, tolerance_mib=tolerance_mib)
        say("   memcoopd (systemd) squeeze to %d MiB followed in %.1f s" % (
            squeeze_mib, time.monotonic() - t0))
        # back to automatic at that target: the guests a restore (SIGTERM
        # with restore-on-exit yes) would give their memory back
        rc, out = host.sh("memcoopctl set %s mode auto" % name)
        check(rc == 0, "memcoopctl set mode auto: %s" % out)
        _, target, _, _ = guest_status(host, name)
        check(target == squeeze_mib * MIB, "memcoopd's target is %r" % target)
        before = g.balloon_actual()
        pid = main_pid(host)
        check(pid > 0, "memcoopd.service has no MainPID")

        # the upgrade, as an administrator does it
        t0 = time.monotonic()
        rc, out = host.sh("dpkg -i /mnt/debs/%s" % shlex.quote(os.path.basename(newdeb)))
        check(rc == 0, "dpkg -i of memcoopd %s:\n%s" % (newver, out[-3000:]))
        say("   dpkg -i memcoopd %s: %.1f s" % (newver, time.monotonic() - t0))
        rc, ver = host.sh("dpkg-query -W -f '${Version}' memcoopd")
        check(ver.strip() == newver, "installed memcoopd is %r, not %s" % (ver, newver))
        newpid = wait_until("memcoopd.service active again", lambda: host.sh(
            "systemctl is-active memcoopd.service")[1].strip() == "active" and main_pid(host),
            30)
        check(newpid != pid, "memcoopd was not restarted by the upgrade (MainPID %d)" % pid)
        say("   restarted by the upgrade: MainPID %d -> %d" % (pid, newpid))
        # adopted at its first tick with the guest online
        deadline = time.monotonic() + 20
        while True:
            st = guest_status(host, name)
            if (st[0] == "online" and st[1]) or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        check(st[1] == squeeze_mib * MIB and "adopted" in st[2],
              "the new memcoopd did not adopt the target %d MiB: %s" % (squeeze_mib, st[3]))
        # the guest, read through QMP directly, over a few ticks (tick 2s)
        for _ in range(8):
            a = g.balloon_actual()
            check(abs(a - before) <= tolerance_mib * MIB,
                  "the guest's balloon moved across the upgrade: %d -> %d MiB" % (
                      before // MIB, a // MIB))
            time.sleep(0.75)
        rc, journal = host.sh("journalctl -b -u memcoopd.service -o cat --no-pager")
        check("paced restore" not in journal, "the restart restored the guest:\n%s" %
              journal[-2000:])
        say("   target %d MiB adopted, balloon at %d MiB before and after (QMP); "
            "upgrade check %.0f s" % (squeeze_mib, a // MIB, time.monotonic() - t_all))
    except Failed as e:
        rc, journal = host.sh("journalctl -b -u memcoopd.service -o cat --no-pager "
                              "| tail -40") if host.p and host.p.poll() is None else (0, "")
        raise Failed("%s\nmemcoopd's journal:\n%s\ncontainer console:\n%s" % (
            e, journal, host.log()))
    finally:
        host.stop()


def main():
    """A lab guest (initramfs, memcoop.ko of the build) as the guest."""
    mclab.install_signal_handlers()
    try:
        built = debs.ensure()
        with mclab.Guest(mem=512, qmp_extra=True, timeout=300, name="vm1") as g:
            g.start("mct-agenthog")
            g.wait_for(r"READY", timeout=180)
            upgrade_restart(g, mclab.mkdtemp("host-systemd"), built, "vm1", 384)
    except (Failed, mclab.LabError, subprocess.CalledProcessError) as e:
        print("FAIL: %s" % e, flush=True)
        mclab.cleanup_tmp(failed=True)
        return 1
    mclab.cleanup_tmp()
    say("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
