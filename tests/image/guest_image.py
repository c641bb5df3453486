#!/usr/bin/env python3
"""The guest packages installed as an administrator would, in a real Debian.

Usage: guest_image.py debian12|debian13 [--upgrade]

  1. the tree's packages (debs.py: dpkg-buildpackage in a clean copy) and
     the cached image (images.py; built once with mmdebstrap);
  2. dpkg -i memcoop-dkms libmemcoop0 (memcoop-guestd when packaged) in a
     chroot into the image (an overlay on the cached tree): DKMS must build
     and install memcoop.ko for the image's own kernel at install time;
  3. boot the image (its kernel and initramfs, systemd, root on
     virtio-blk) under the lab's QEMU: memcoop, not virtio_balloon, drives
     the balloon device, the loaded module is the file DKMS installed
     (srcversion), memcoop-guestd's unit is active if packaged; a QMP
     `balloon` target is followed; then the packaged memcoopd (QMP backend,
     run on the host from its .deb) squeezes the guest through memcoopctl
     and the balloon follows (with --upgrade: host_systemd.py, memcoopd
     installed in the Debian 12 image booted by systemd-nspawn, upgraded by
     dpkg -i while it holds the guest squeezed: restarted, the guest's
     balloon untouched);
  4. --upgrade: a newer memcoop-dkms (the same package, version +upgrade1,
     its module carrying that version in modinfo) installed over it: DKMS
     removes the old version and builds the new one; at the next boot the
     new module is the one loaded and drives the balloon;
  5. apt-get purge of the guest packages: no memcoop module under
     /lib/modules, no DKMS tree, no /usr/src/memcoop-*, and the image's
     file list equals the one before the install (apart from dpkg/apt's own
     records and logs).

Exit 0 pass, 1 fail (nothing here is a skip: .ci/deps.sh installs
mmdebstrap, dpkg-dev, debhelper and dh-dkms; the images come from the host's
apt sources).
"""

import lzma
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lab"))
import debs  # noqa: E402
from debs import Failed, check, say  # noqa: E402
import host_systemd  # noqa: E402
import images  # noqa: E402
import mclab  # noqa: E402

MEM = 1024                      # MiB
TARGET = 768                    # MiB: the QMP balloon target
SQUEEZE = 640                   # MiB: memcoopctl's target
UPGRADE_SUFFIX = "+upgrade1"
# a full systemd boot and shutdown under TCG on a loaded host
BOOT_TIMEOUT = 420
mclab.POWEROFF_S = 120

GUEST_PACKAGES = ["memcoop-dkms", "libmemcoop0", "memcoop-guestd"]

# Files that may differ between the image before the install and after
# the purge: dpkg's and apt's records, logs, caches, and DKMS's own signing
# key (dkms makes /var/lib/dkms/mok.* on its first build and keeps them for
# every later module: they belong to dkms, not to memcoop-dkms).
LIST_NOISE = re.compile(r"^/(var/lib/dpkg|var/lib/apt|var/cache|var/log|var/lib/dkms/mok\.)")

GUEST_SCRIPT = r"""
state=$(systemctl is-system-running --wait)
echo "STATE $state"
[ "$state" = running ] || systemctl --failed --no-legend --plain
echo "UNAME $(uname -r)"
# "running" does not wait for udev's coldplug: under TCG the module that
# udev loads for the balloon device came 9 s after the test unit started
udevadm settle --timeout=180
for d in /sys/bus/virtio/devices/*; do
	[ "$(cat $d/device)" = 0x0005 ] || continue
	drv=none
	[ -e $d/driver ] && drv=$(basename $(readlink $d/driver))
	echo "BALLOON-DRIVER $drv"
done
echo "MODULES $(cut -d' ' -f1 /proc/modules | grep -E '^(memcoop|virtio_balloon)$' | sort | tr '\n' ' ')"
echo "LOADED-BUILDID $(od -An -v -tx1 /sys/module/memcoop/notes/.note.gnu.build-id | tr -d ' \n')"
echo "FILE $(modinfo -n memcoop)"
echo "FILE-PKGVERSION $(modinfo -F memcoop_pkgtest memcoop)"
echo "DKMS $(dkms status memcoop 2>/dev/null | tr '\n' ';')"
if systemctl cat memcoop-guestd.service > /dev/null 2>&1; then
	echo "GUESTD $(systemctl is-active memcoop-guestd.service)"
fi
echo HOST-GO
read go < /dev/ttyS2
echo "COUNTERS"
cat /sys/kernel/debug/memcoop/balloon
"""


def field(out, name):
    m = re.search(r"^%s ?(.*)$" % re.escape(name), out, re.M)
    return m.group(1).strip() if m else None


def file_list(name, upper):
    rc, out = images.chroot(name, upper, [
        "sh", "-c", "find / -xdev \\( -path /proc -o -path /sys -o -path /dev -o -path /run "
        "-o -path /tmp \\) -prune -o -print | sort"])
    check(rc == 0, "find in the image failed: %s" % out[-1000:])
    return set(out.splitlines())


def newer_dkms(deb, tmp):
    """memcoop-dkms @deb repacked as version VERSION+upgrade1: the DKMS tree
    renamed, dkms.conf and the maintainer scripts carrying the new version,
    and the module source marked with MODULE_INFO(memcoop_pkgtest, ...) so
    the module it builds can be told from the old one."""
    def edit(d, old, new):
        src = os.path.join(d, "usr", "src")
        (tree,) = os.listdir(src)
        os.rename(os.path.join(src, tree), os.path.join(src, "memcoop-" + new))
        for path in [os.path.join(src, "memcoop-" + new, "dkms.conf")] + \
                [os.path.join(d, "DEBIAN", s) for s in ("postinst", "prerm", "postrm")
                 if os.path.exists(os.path.join(d, "DEBIAN", s))]:
            text = open(path).read()
            text = re.sub(r"(?<![\w.+])%s(?![\w.+])" % re.escape(old), new, text)
            open(path, "w").write(text)
        main_c = os.path.join(src, "memcoop-" + new, "guest-driver", "kernel", "main.c")
        with open(main_c, "a") as f:
            f.write('\nMODULE_INFO(memcoop_pkgtest, "%s");\n' % new)
    return debs.repack(deb, tmp, UPGRADE_SUFFIX, edit)


def check_dkms_install(name, upper, out, kver, version):
    """dpkg's output and the image after it: DKMS built memcoop/@version for
    the image's kernel @kver at install time."""
    rc, st = images.chroot(name, upper, ["dkms", "status", "memcoop"])
    say("   dkms status: " + st.strip().replace("\n", "; "))
    check(re.search(r"^memcoop/%s, %s, x86_64: installed" % (re.escape(version),
                                                             re.escape(kver)), st, re.M),
          "dkms status has no memcoop/%s installed for %s: %r\ndpkg said:\n%s" % (
              version, kver, st, out[-3000:]))
    check(len(st.strip().splitlines()) == 1, "more than one memcoop in dkms: %r" % st)
    rc, vm = images.chroot(name, upper, ["sh", "-c", "modinfo -F vermagic "
                                         "/lib/modules/%s/updates/dkms/memcoop.ko*" % kver])
    check(rc == 0 and vm.split()[0] == kver,
          "the module DKMS installed is not for %s: %r" % (kver, vm))


def module_build_id(name, upper, tmp, path):
    """The GNU build id of the module file @path in the image (xz or zstd
    compressed or not), read on the host."""
    ko = os.path.join(tmp, "module.ko")
    rc, out = images.in_overlay(name, upper, 'cp "$ROOT$1" "$2"', [path, ko + ".in"])
    check(rc == 0, "cannot read %s from the image: %s" % (path, out))
    data = open(ko + ".in", "rb").read()
    if path.endswith(".xz"):
        data = lzma.decompress(data)
    elif path.endswith(".zst"):
        data = subprocess.run(["zstd", "-dc"], input=data, capture_output=True,
                              check=True).stdout
    open(ko, "wb").write(data)
    r = subprocess.run(["readelf", "-n", ko], capture_output=True, text=True)
    m = re.search(r"Build ID: ([0-9a-f]+)", r.stdout)
    check(m, "%s has no build id" % path)
    return m.group(1)


def boot_and_check(name, upper, tmp, pkgs, memcoopd_dir, want_pkgversion, squeeze=True,
                   host_debs=None):
    disk = os.path.join(tmp, "disk.img")
    t0 = time.monotonic()
    images.make_disk(name, upper, disk)
    vmlinuz, initrd = images.boot_files(name, upper, tmp)
    say("   disk image written in %.0f s" % (time.monotonic() - t0))
    share = os.path.join(tmp, "share")
    os.makedirs(share, exist_ok=True)
    with open(os.path.join(share, "run"), "w") as f:
        f.write(GUEST_SCRIPT)
    with images.ImageGuest(disk, vmlinuz, initrd, share, mem=MEM, name=name,
                           timeout=BOOT_TIMEOUT, qmp_extra=True) as g:
        g.start()
        say("   booted to the test unit in %.0f s" % g.boot_seconds)
        g.wait_for(r"HOST-GO\n", timeout=BOOT_TIMEOUT)
        out = g.output
        say("   " + "\n   ".join(out.strip().splitlines()))
        kver = images.info(name)["kernel"]
        check(field(out, "UNAME") == kver, "the guest runs %s, not the image's kernel %s" % (
            field(out, "UNAME"), kver))
        check(field(out, "BALLOON-DRIVER") == "memcoop-balloon",
              "the balloon device is driven by %r, not memcoop" % field(out, "BALLOON-DRIVER"))
        check(field(out, "MODULES") == "memcoop",
              "balloon modules loaded: %r (want memcoop alone)" % field(out, "MODULES"))
        want = module_build_id(name, upper, tmp, field(out, "FILE"))
        check(want in field(out, "LOADED-BUILDID"),
              "the loaded memcoop (build id note %s) is not %s (build id %s)" % (
                  field(out, "LOADED-BUILDID"), field(out, "FILE"), want))
        check(field(out, "FILE-PKGVERSION") == want_pkgversion,
              "the installed module's memcoop_pkgtest is %r, want %r" % (
                  field(out, "FILE-PKGVERSION"), want_pkgversion))
        check(field(out, "STATE") in ("running",), "systemd says %r" % field(out, "STATE"))
        if "memcoop-guestd" in pkgs:
            check(field(out, "GUESTD") == "active",
                  "memcoop-guestd.service is %r" % field(out, "GUESTD"))
        secs = g.wait_actual(MEM, timeout=5)
        g.set_target(TARGET)
        secs = g.wait_actual(TARGET, timeout=180)
        say("   QMP balloon %d -> %d MiB followed in %.1f s" % (MEM, TARGET, secs))
        if squeeze and host_debs:
            host_systemd.upgrade_restart(g, tmp, host_debs, name, SQUEEZE)
        elif squeeze:
            squeeze_with_memcoopd(g, tmp, memcoopd_dir, name)
        g.send("go")
        rc = g.wait_exit(timeout=BOOT_TIMEOUT)
        check(rc == 0, "the guest script exited %d:\n%s" % (rc, g.output[-2000:]))
        m = re.search(r"^inflated_pages[:= ]+(\d+)", g.output, re.M)
        say("   guest powered off; %s" % (m.group(0) if m else "counters: " +
                                           g.output.split("COUNTERS", 1)[-1][:300].strip()))


def squeeze_with_memcoopd(g, tmp, root, name):
    """The packaged memcoopd and memcoopctl (unpacked from the .deb, run on
    the host): QMP backend, the guest's second QMP socket; memcoopctl sets a
    target below the current one and the balloon follows."""
    sock = os.path.join(tmp, "memcoopd.sock")
    conf = os.path.join(tmp, "memcoopd.conf")
    log = os.path.join(tmp, "memcoopd.log")
    with open(conf, "w") as f:
        f.write('socket "%s"\nbackend qmp\ntick 1s\nstats-period 1\nauto no\n'
                'ksm unmanaged\nmetrics off\nrestore-on-exit no\n'
                'guest %s {\n\tqmp "%s"\n}\n' % (sock, name, g.qmp_path2))
    daemon = os.path.join(root, "usr", "sbin", "memcoopd")
    ctl = os.path.join(root, "usr", "bin", "memcoopctl")
    r = subprocess.run([daemon, "--check", "-f", conf], capture_output=True, text=True)
    check(r.returncode == 0, "memcoopd --check: %s%s" % (r.stdout, r.stderr))
    agent = subprocess.Popen([daemon, "-d", "-v", "-f", conf], stdout=open(log, "w"),
                             stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            r = subprocess.run([ctl, "-s", sock, "status"], capture_output=True, text=True)
            if r.returncode == 0 and re.search(r"\b%s\b.*online" % re.escape(name), r.stdout):
                break
            check(agent.poll() is None, "memcoopd exited %s:\n%s" % (
                agent.returncode, open(log).read()[-2000:]))
            check(time.monotonic() < deadline, "memcoopd did not see guest %s online:\n%s\n%s"
                  % (name, r.stdout + r.stderr, open(log).read()[-2000:]))
            time.sleep(0.3)
        t0 = time.monotonic()
        r = subprocess.run([ctl, "-s", sock, "set", name, "target", "%dM" % SQUEEZE],
                           capture_output=True, text=True)
        check(r.returncode == 0, "memcoopctl set: %s%s" % (r.stdout, r.stderr))
        g.wait_actual(SQUEEZE, timeout=180)
        say("   memcoopd squeeze %d -> %d MiB followed in %.1f s" % (
            TARGET, SQUEEZE, time.monotonic() - t0))
    except mclab.LabError as e:
        raise Failed("%s\nmemcoopd log:\n%s" % (e, open(log).read()[-2000:]))
    finally:
        agent.terminate()
        agent.wait(20)


def purge_and_check(name, upper, pkgs, base_list, kver):
    rc, out = images.chroot(name, upper, ["apt-get", "-q", "-y", "purge"] + pkgs)
    check(rc == 0, "apt-get purge failed:\n%s" % out[-3000:])
    rc, left = images.chroot(name, upper, [
        "sh", "-c", "find /lib/modules /usr/lib/modules /var/lib/dkms /usr/src /etc "
        "-name 'memcoop*' 2>/dev/null; dkms status memcoop"])
    check(left.strip() == "", "left after apt purge: %r" % left)
    after = file_list(name, upper)
    new = sorted(p for p in after - base_list if not LIST_NOISE.match(p))
    # an empty directory of the image may go: deb-systemd-helper removes
    # the empty .wants directories it finds when purging a unit
    lower = os.path.join(images.image_dir(name), "root")
    gone = sorted(p for p in base_list - after if not LIST_NOISE.match(p) and not (
        os.path.isdir(lower + p) and not os.path.islink(lower + p) and
        not os.listdir(lower + p)))
    check(not new, "files left after apt purge that the image did not have: %s" % new[:40])
    check(not gone, "files of the image gone after apt purge: %s" % gone[:40])
    say("   apt purge: no module, no DKMS tree, file list as before (%d paths)" % len(after))


def run(name, upgrade):
    t_all = time.monotonic()
    meta = images.ensure(name)
    kver = meta["kernel"]
    say("== image %s (%s, kernel %s, %.0f MiB, built in %s s)" % (
        name, meta["codename"], kver, meta["size_bytes"] / 2**20, meta["build_seconds"]))
    t0 = time.monotonic()
    built = debs.ensure()
    say("== packages: %s (dpkg-buildpackage %.0f s, here %.0f s)" % (
        " ".join(sorted(built)), debs.build_seconds(built), time.monotonic() - t0))
    pkgs = [p for p in GUEST_PACKAGES if p in built]
    version = subprocess.run(["dpkg-deb", "-f", built["memcoop-dkms"], "Version"],
                             capture_output=True, text=True, check=True).stdout.strip()
    tmp = mclab.mkdtemp("image-" + name)
    upper = os.path.join(tmp, "overlay")
    memcoopd_dir = os.path.join(tmp, "memcoopd")
    subprocess.run(["dpkg-deb", "-x", built["memcoopd"], memcoopd_dir], check=True)

    base_list = file_list(name, upper)
    t0 = time.monotonic()
    rc, out = images.install_debs(name, upper, [built[p] for p in pkgs])
    check(rc == 0, "dpkg -i %s failed:\n%s" % (" ".join(pkgs), out[-4000:]))
    say("== dpkg -i %s: %.0f s (DKMS build included)" % (" ".join(pkgs), time.monotonic() - t0))
    check_dkms_install(name, upper, out, kver, version)

    t0 = time.monotonic()
    say("== boot 1")
    boot_and_check(name, upper, tmp, pkgs, memcoopd_dir, "", squeeze=True,
                   host_debs=built if upgrade else None)
    say("   boot 1: %.0f s" % (time.monotonic() - t0))

    if upgrade:
        newdeb, newver = newer_dkms(built["memcoop-dkms"], tmp)
        t0 = time.monotonic()
        rc, out = images.install_debs(name, upper, [newdeb])
        check(rc == 0, "dpkg -i %s failed:\n%s" % (os.path.basename(newdeb), out[-4000:]))
        say("== upgrade to memcoop-dkms %s: %.0f s" % (newver, time.monotonic() - t0))
        check_dkms_install(name, upper, out, kver, newver)
        rc, st = images.chroot(name, upper, ["sh", "-c", "ls -d /usr/src/memcoop-* "
                                             "/var/lib/dkms/memcoop/*"])
        check("memcoop-" + version + "\n" not in st and "/" + version + "\n" not in st,
              "the old version's trees are still there after the upgrade: %r" % st)
        t0 = time.monotonic()
        say("== boot 2 (after the upgrade)")
        boot_and_check(name, upper, tmp, pkgs, memcoopd_dir, newver, squeeze=False)
        say("   boot 2: %.0f s" % (time.monotonic() - t0))

    purge_and_check(name, upper, pkgs, base_list, kver)
    mclab.cleanup_tmp()
    say("PASS: %s in %.0f s" % (name, time.monotonic() - t_all))
    return 0


def main():
    mclab.install_signal_handlers()
    args = sys.argv[1:]
    upgrade = "--upgrade" in args
    args = [a for a in args if a != "--upgrade"]
    if len(args) != 1 or args[0] not in images.IMAGES:
        sys.exit(__doc__)
    try:
        return run(args[0], upgrade)
    except (Failed, mclab.LabError, subprocess.CalledProcessError) as e:
        print("FAIL: %s" % e, flush=True)
        mclab.cleanup_tmp(failed=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
