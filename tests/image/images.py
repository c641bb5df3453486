"""Bootable Debian guest images for the lab: Debian 12 and Debian 13 with
systemd, udev, the distribution's own kernel and its headers, dkms and
build-essential, made once with mmdebstrap from the host's own apt sources
and cached in ~/.cache/memcoop/images/NAME/:

  root/        the image's tree (what mmdebstrap made, nothing installed)
  info.json    release, kernel version, build seconds, size
  .complete    written last: a half-built image is made again

A run never changes the cached tree: install() lays an overlay on it (in a
mount namespace of its own), installs packages with dpkg in a chroot into
the overlay and writes an ext4 disk image from the result; boot() starts
it under the lab's QEMU with the image's own kernel and initramfs (root on
virtio-blk, no network), and a unit in the image (mclab-test.service, only
with mclab.test=1 on the command line) runs the script /run on the 9p
share "mclab" with its output on ttyS1, then powers the guest off.

  python3 tests/image/images.py ensure debian12|debian13   build if missing
  python3 tests/image/images.py info debian12               print info.json
"""

import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lab"))
import mclab  # noqa: E402

# name -> the release's codename (the host is Debian 12: its own sources
# are used for bookworm; for trixie the same mirrors with the suites renamed)
IMAGES = {"debian12": "bookworm", "debian13": "trixie"}
HOST_CODENAME = "bookworm"

# What every image has besides the minbase variant.
PACKAGES = ["systemd", "systemd-sysv", "udev", "kmod", "initramfs-tools",
            "linux-image-amd64", "linux-headers-amd64", "dkms", "build-essential",
            "procps", "libjansson4"]
# The libraries our packages link (names differ by release: the 64-bit
# time_t transition renamed libevent in trixie); libvirt0 for memcoopd in
# the host-side check (tests/image/host_chroot.py) on Debian 12.
RELEASE_PACKAGES = {
    "bookworm": ["libevent-2.1-7", "libevent-pthreads-2.1-7", "libvirt0",
                 "systemd-container"],
    "trixie": ["libevent-2.1-7t64", "libevent-pthreads-2.1-7t64"],
}

TEST_UNIT = """[Unit]
Description=memcoop lab: run the test script from the 9p share mclab
ConditionKernelCommandLine=mclab.test=1

[Service]
Type=exec
ExecStart=/usr/local/sbin/mclab-test
StandardInput=null
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
"""

# The script runs with its output on ttyS1 between the lab's markers
# (mclab.Guest's READY/EXIT protocol), then the guest powers off.
TEST_SCRIPT = r"""#!/bin/sh
out=/dev/ttyS1
stty -F /dev/ttyS1 raw -echo 2>/dev/null
stty -F /dev/ttyS2 raw -echo 2>/dev/null
modprobe 9pnet_virtio 2>/dev/null
mkdir -p /mnt/mclab
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 mclab /mnt/mclab; then
	printf '\nMCLAB-SETUP-FAILED mount 9p\n' > $out
	systemctl poweroff
	exit 1
fi
echo "MCLAB-READY $(cut -d' ' -f1 /proc/uptime)" > $out
cd /tmp
/bin/sh /mnt/mclab/run > $out 2>&1 < /dev/null
rc=$?
printf '\nMCLAB-EXIT %d\n' $rc > $out
echo "MCLAB-TAINT $(cat /proc/sys/kernel/tainted)" > /dev/console
sync
umount /mnt/mclab
systemctl poweroff
"""

# Kernel command line of an image guest (the image's own kernel, root on
# the first virtio-blk disk).  acpi=noirq: as the lab's (mclab.KERNEL_ARGS),
# PCI interrupts from the MP table, not ACPI's slow _PRT loop.
KERNEL_ARGS = ("root=/dev/vda rw console=ttyS0,115200 loglevel=5 panic=-1 "
               "8250.nr_uarts=4 no_timer_check mitigations=off mclab.test=1 "
               "systemd.show_status=0 rd.udev.log_level=3 acpi=noirq")


class ImageError(mclab.LabError):
    pass


def images_dir():
    return os.path.join(mclab.cache_dir(), "images")


def image_dir(name):
    if name not in IMAGES:
        raise ImageError("no image %r (one of %s)" % (name, ", ".join(IMAGES)))
    return os.path.join(images_dir(), name)


def host_sources():
    """The host's apt sources: [(uri, [suites], [components], signed_by)]."""
    out = []
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        for stanza in re.split(r"\n\s*\n", open(path).read()):
            f = {}
            for line in stanza.splitlines():
                m = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
                if m:
                    f[m.group(1).lower()] = m.group(2).strip()
            if "deb" not in f.get("types", "").split() or "uris" not in f:
                continue
            for uri in f["uris"].split():
                out.append((uri, f.get("suites", "").split(),
                            f.get("components", "main").split(), f.get("signed-by")))
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        try:
            lines = open(path).read().splitlines()
        except OSError:
            continue
        for line in lines:
            m = re.match(r"^deb\s+(?:\[([^]]*)\]\s+)?(\S+)\s+(\S+)\s+(.*)$", line.strip())
            if m:
                sb = re.search(r"signed-by=(\S+)", m.group(1) or "")
                out.append((m.group(2), [m.group(3)], m.group(4).split(),
                            sb.group(1) if sb else None))
    return out


def sources_for(codename):
    """deb lines for @codename on the host's own mirrors: the host's entries
    for its own release, with the suite names carried over to @codename
    (bookworm-security -> trixie-security); backports are left out."""
    lines = []
    for uri, suites, comps, signed in host_sources():
        for s in suites:
            m = re.match(r"^%s(-updates|-security)?$" % HOST_CODENAME, s)
            if not m:
                continue
            opt = "[signed-by=%s] " % (signed or mclab.KEYRING)
            lines.append("deb %s%s %s%s %s" % (opt, uri, codename, m.group(1) or "",
                                               " ".join(c for c in comps if c == "main")))
    if not lines:
        raise ImageError("no %s entry in the host's apt sources" % HOST_CODENAME)
    return lines


def du_bytes(path):
    r = subprocess.run(["du", "-sb", path], capture_output=True, text=True)
    return int(r.stdout.split()[0]) if r.returncode == 0 else 0


def ensure(name):
    """The cached image @name, built with mmdebstrap when missing; its info."""
    d = image_dir(name)
    root = os.path.join(d, "root")
    os.makedirs(d, exist_ok=True)
    with mclab._flock(d + ".lock"):
        if os.path.exists(os.path.join(d, ".complete")):
            return info(name)
        if os.path.exists(root):
            shutil.rmtree(root)
        codename = IMAGES[name]
        srcs = sources_for(codename)
        pkgs = PACKAGES + RELEASE_PACKAGES[codename]
        hook = "; ".join([
            'echo "/dev/vda / ext4 rw,errors=remount-ro 0 1" > "$1/etc/fstab"',
            'echo mclab-%s > "$1/etc/hostname"' % name,
            'mkdir -p "$1/usr/local/sbin"',
            'cp %s "$1/usr/local/sbin/mclab-test"' % "$MCLAB_TEST_SCRIPT",
            'chmod 755 "$1/usr/local/sbin/mclab-test"',
            'cp %s "$1/etc/systemd/system/mclab-test.service"' % "$MCLAB_TEST_UNIT",
            'ln -sf /etc/systemd/system/mclab-test.service '
            '"$1/etc/systemd/system/multi-user.target.wants/mclab-test.service"',
            # no timers that start apt or fsck work in a short-lived guest
            'for t in apt-daily apt-daily-upgrade e2scrub_all fstrim dpkg-db-backup; do '
            'rm -f "$1/etc/systemd/system/timers.target.wants/$t.timer"; done',
            'passwd --root "$1" -d root',
        ])
        tmp = mclab.mkdtemp("image-" + name)
        script = os.path.join(tmp, "mclab-test")
        unit = os.path.join(tmp, "mclab-test.service")
        open(script, "w").write(TEST_SCRIPT)
        open(unit, "w").write(TEST_UNIT)
        env = dict(os.environ, MCLAB_TEST_SCRIPT=script, MCLAB_TEST_UNIT=unit)
        argv = ["mmdebstrap", "--variant=minbase", "--quiet",
                "--aptopt=APT::Install-Recommends \"false\"",
                "--include=" + ",".join(pkgs),
                "--customize-hook=" + hook,
                codename, root] + srcs
        sys.stderr.write("images: building %s (%s) with mmdebstrap into %s\n" % (
            name, codename, root))
        t0 = time.monotonic()
        r = subprocess.run(argv, capture_output=True, text=True, env=env)
        mclab.cleanup_tmp()
        if r.returncode != 0:
            shutil.rmtree(root, ignore_errors=True)
            raise ImageError("mmdebstrap %s failed: %s" % (name, r.stderr.strip()[-3000:]))
        secs = time.monotonic() - t0
        kernels = sorted(os.listdir(os.path.join(root, "lib", "modules")), key=mclab._vkey)
        if len(kernels) != 1:
            raise ImageError("%s: expected one kernel, found %s" % (name, kernels))
        meta = {"name": name, "codename": codename, "kernel": kernels[0],
                "build_seconds": round(secs), "size_bytes": du_bytes(root),
                "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        with open(os.path.join(d, "info.json"), "w") as f:
            json.dump(meta, f, indent=1)
        open(os.path.join(d, ".complete"), "w").close()
        sys.stderr.write("images: %s ready in %.0f s, %.0f MiB, kernel %s\n" % (
            name, secs, meta["size_bytes"] / 2**20, meta["kernel"]))
        return meta


def info(name):
    with open(os.path.join(image_dir(name), "info.json")) as f:
        return json.load(f)


# ---------------------------------------------------------------------------
# a run's disk: the cached tree, an overlay, packages installed in a chroot


def in_overlay(name, upper, script, args=()):
    """Run the shell @script (with $ROOT the merged tree) as root in a mount
    namespace where the cached tree of @name has the overlay @upper (a
    directory of ours, kept between calls: what a run changed) on top;
    /proc, /sys and /dev are bound inside.  Returns (status, output)."""
    lower = os.path.join(image_dir(name), "root")
    for sub in ("upper", "work", "merged"):
        os.makedirs(os.path.join(upper, sub), exist_ok=True)
    merged = os.path.join(upper, "merged")
    pre = "\n".join([
        "set -e", "mount --make-rprivate /",
        "mount -t overlay overlay -o lowerdir=%s,upperdir=%s,workdir=%s %s" % (
            shlex.quote(lower), shlex.quote(os.path.join(upper, "upper")),
            shlex.quote(os.path.join(upper, "work")), shlex.quote(merged)),
        "ROOT=%s" % shlex.quote(merged),
        'mount -t proc proc "$ROOT/proc"',
        'mount --rbind /sys "$ROOT/sys"',
        'mount --rbind /dev "$ROOT/dev"',
        'mount -t tmpfs tmpfs "$ROOT/run"',
        "set +e",
    ])
    env = dict(os.environ, PATH="/usr/sbin:/usr/bin:/sbin:/bin", LC_ALL="C.UTF-8",
               DEBIAN_FRONTEND="noninteractive")
    # the tests' TMPDIR (tests/run) is a host path the image does not have:
    # DKMS's mktemp in the chroot failed on it
    env.pop("TMPDIR", None)
    r = subprocess.run(["unshare", "--mount", "sh", "-c", pre + "\n" + script, "sh"] +
                       list(args), env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    return r.returncode, r.stdout


def chroot(name, upper, argv):
    """@argv in a chroot into the overlaid image; (status, output)."""
    return in_overlay(name, upper, 'chroot "$ROOT" "$@"', argv)


def install_debs(name, upper, debs):
    """dpkg -i @debs (host paths) inside the overlaid image; (status, output)."""
    script = "\n".join([
        'mkdir -p "$ROOT/tmp/debs"',
        'for d in "$@"; do cp "$d" "$ROOT/tmp/debs/"; done',
        'chroot "$ROOT" sh -c \'dpkg -i /tmp/debs/*.deb\'',
        'rc=$?',
        'rm -rf "$ROOT/tmp/debs"',
        'exit $rc'])
    return in_overlay(name, upper, script, debs)


def make_disk(name, upper, disk, slack_mib=768):
    """An ext4 disk image @disk of the overlaid tree (raw, sparse)."""
    script = "\n".join([
        'size=$(du -sm "$ROOT" --exclude=./proc --exclude=./sys --exclude=./dev | cut -f1)',
        # the mounts in $ROOT are not the image's: write it from a plain view
        'umount -l "$ROOT/proc" "$ROOT/sys" "$ROOT/dev" "$ROOT/run"',
        'rm -f "$1"',
        'truncate -s $((size + %d))M "$1"' % slack_mib,
        'mkfs.ext4 -q -F -L root -d "$ROOT" "$1"'])
    rc, out = in_overlay(name, upper, script, [disk])
    if rc != 0:
        raise ImageError("mkfs.ext4 -d for %s failed: %s" % (name, out[-2000:]))


def boot_files(name, upper, dest):
    """Copy the overlaid image's kernel and initramfs into @dest; their paths."""
    ver = info(name)["kernel"]
    script = 'cp "$ROOT/boot/vmlinuz-$1" "$ROOT/boot/initrd.img-$1" "$2/"'
    rc, out = in_overlay(name, upper, script, [ver, dest])
    if rc != 0:
        raise ImageError("no kernel/initrd %s in %s: %s" % (ver, name, out))
    return os.path.join(dest, "vmlinuz-" + ver), os.path.join(dest, "initrd.img-" + ver)


class ImageGuest(mclab.Guest):
    """A guest booting an image's disk (mclab.Guest's channels, QMP, console
    checks and READY/EXIT protocol); the script to run is @share/run."""

    def __init__(self, disk, vmlinuz, initrd, share, **kw):
        kw.setdefault("timeout", 600)
        kw.setdefault("mem", 1024)
        self.disk, self.vmlinuz, self.initrd, self.share = disk, vmlinuz, initrd, share
        super().__init__(**kw)

    def start(self):
        for p in (self.console_path, self.out_path):
            open(p, "wb").close()
        argv = [self.qemu_bin] + [a for d in self.qemu_fw for a in ("-L", d)] + [
            "-name", self.name, "-machine", "pc", "-accel", "kvm" if self.kvm else "tcg",
            "-m", str(self.mem), "-smp", str(self.smp),
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-kernel", self.vmlinuz, "-initrd", self.initrd,
            "-append", " ".join(x for x in (KERNEL_ARGS, self.append) if x),
            "-drive", "file=%s,format=raw,if=virtio,cache=unsafe" % self.disk,
            "-fsdev", "local,id=mclab,path=%s,security_model=none" % self.share,
            "-device", "virtio-9p-pci,fsdev=mclab,mount_tag=mclab",
            "-chardev", "file,id=con,path=" + self.console_path, "-serial", "chardev:con",
            "-chardev", "file,id=out,path=" + self.out_path, "-serial", "chardev:out",
            "-chardev", "socket,id=ctl,path=%s,server=on,wait=off" % self.ctl_path,
            "-serial", "chardev:ctl",
            "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path]
        if self.qmp_path2:
            argv += ["-chardev", "socket,id=qmp2,path=%s,server=on,wait=off" % self.qmp_path2,
                     "-mon", "chardev=qmp2,mode=control"]
        if self.balloon:
            argv += ["-device", "virtio-balloon-pci,id=balloon0"]
        mclab._log(" ".join(shlex.quote(a) for a in argv))
        self.started = time.monotonic()
        self.qemu_log = open(os.path.join(self.tmp, "qemu.log"), "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.qemu_log,
                                     stderr=subprocess.STDOUT,
                                     preexec_fn=mclab._child_setup)
        self.qemu_pid = self.proc.pid
        try:
            self.qmpc = mclab.QMP(self.qmp_path, timeout=30)
        except mclab.LabError as e:
            raise ImageError("%s; qemu said: %s" % (e, self._qemu_log()))
        m = self._wait_re(r"MCLAB-(READY|SETUP-FAILED)(.*)\n", self.timeout, what="boot")
        if m.group(1) != "READY":
            raise ImageError("guest setup failed:%s\n%s" % (m.group(2), self.console_tail()))
        self.boot_seconds = time.monotonic() - self.started
        return self


# The guest packages a run installs (those the tree builds).
GUEST_PACKAGES = ["memcoop-dkms", "libmemcoop0", "memcoop-guestd"]


def prepared_guest(image, debs, script, builddir=None, tmp_name=None, **kw):
    """An ImageGuest (not started) of image @image with @debs (host paths)
    installed, its disk and boot files made, the shell @script as its test
    script, and the build's in-guest programs in @share/bin (/mnt/mclab/bin
    in the guest).  Its share directory is g.share: add files before
    start().  @kw goes to ImageGuest (mem, smp, timeout, name...)."""
    tmp = mclab.mkdtemp(tmp_name or "image-run-" + image)
    upper = os.path.join(tmp, "overlay")
    ensure(image)
    if debs:
        rc, out = install_debs(image, upper, debs)
        if rc != 0:
            raise ImageError("dpkg -i in %s failed:\n%s" % (image, out[-3000:]))
    disk = os.path.join(tmp, "disk.img")
    make_disk(image, upper, disk)
    vmlinuz, initrd = boot_files(image, upper, tmp)
    share = os.path.join(tmp, "share")
    os.makedirs(os.path.join(share, "bin"))
    for prog in mclab.Lab(builddir).programs():
        shutil.copy2(prog, os.path.join(share, "bin"))
    with open(os.path.join(share, "run"), "w") as f:
        f.write(script)
    return ImageGuest(disk, vmlinuz, initrd, share, builddir=builddir, **kw)


def package_debs(builddir=None):
    """The tree's guest packages (GUEST_PACKAGES it builds): .deb paths."""
    import debs
    built = debs.ensure(builddir=builddir)
    return [built[p] for p in GUEST_PACKAGES if p in built]


def run_cmd(name, cmd, builddir=None, mem=1024, smp=1, timeout=600, stream=None):
    """`mclab run --image NAME -- CMD`: the tree's guest packages installed
    into image @name (debs.py, install_debs()), the image booted, @cmd run
    by its test unit with the build's in-guest programs first on its PATH
    (from the 9p share); returns (exit status, guest)."""
    g = prepared_guest(name, package_debs(builddir),
                       "PATH=/mnt/mclab/bin:$PATH\nexport PATH\n%s\n" % shlex.join(cmd),
                       builddir=builddir, mem=mem, smp=smp, timeout=timeout, name=cmd[0])
    try:
        g.start()
        return g.wait_exit(stream=stream), g
    finally:
        g.close()
        mclab.cleanup_tmp()


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("ensure", "info"):
        sys.exit("usage: images.py ensure|info %s" % "|".join(IMAGES))
    try:
        meta = ensure(sys.argv[2]) if sys.argv[1] == "ensure" else info(sys.argv[2])
    except mclab.LabError as e:
        sys.exit("images: FAIL: %s" % e)
    print(json.dumps(meta, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
