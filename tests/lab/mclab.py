"""mclab: the memcoop guest lab.

Boots the Debian guest kernel under stock QEMU (TCG unless KVM is asked
for) with a virtio-balloon device, a QMP socket and serial channels, loads
the virtio modules and memcoop.ko (or the stock virtio_balloon), runs a
program in the guest and brings its output and exit status back.

Channels:
  ttyS0  kernel console   -> <tmp>/console.log (checked for BUG/WARNING/taint)
  ttyS1  program output   -> <tmp>/out.log
  ttyS2  host -> program  <- Guest.send() through a unix socket
  QMP    <tmp>/qmp.sock (Guest.qmp()), optional second one for an agent

A run never leaves QEMU or its temporary directory behind: QEMU gets
PR_SET_PDEATHSIG, and Guest.close() (the context manager) kills it and
removes the directory.

Every temporary file or directory of the tests is named TMP_PREFIX... in
$TMPDIR (default /tmp): tests/run gives its meson test runs a TMPDIR of
their own and fails when anything is left in it.  Test scripts make theirs
with mkdtemp() and remove them with cleanup_tmp().
"""

import atexit
import contextlib
import ctypes
import fcntl
import glob
import hashlib
import json
import lzma
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import weakref
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import debugkernel  # noqa: E402

__all__ = ["Guest", "LabError", "QMPError", "Lab", "boot_files", "console_problems",
           "TMP_PREFIX", "mkdtemp", "cleanup_tmp"]

# The name of every temporary file or directory the tests make.
TMP_PREFIX = "memcoop-test-"


class LabError(Exception):
    """The lab or the guest failed (boot, hang, kernel warning, taint)."""


class QMPError(Exception):
    """QEMU answered a QMP command with an error."""


# What a clean console must not contain.
BAD_CONSOLE = [
    r"BUG:",
    r"\bBUG \S+ \(",                 # slub_debug: "BUG kmalloc-64 (Tainted...): ..."
    r"WARNING:",
    r"\bOops\b",
    r"general protection",
    r"list_add corruption",
    r"list_del corruption",
    r"refcount_t:",
    r"Kernel panic",
    r"kernel BUG at",
    r"UBSAN:",
    r"INFO: task \S+ blocked for more than",
    r"rcu: INFO: rcu_\S+ (self-)?detected stall",
    r"Poison overwritten",
    r"Watchdog detected hard LOCKUP",
]
# Taint flags a run may carry: O (out-of-tree module), E (unsigned module).
ALLOWED_TAINT = (1 << 12) | (1 << 13)

# Seconds a guest has to power off once its program exited.
POWEROFF_S = 30

VIRTIO_MODULES = ["virtio_ring", "virtio", "virtio_pci_modern_dev",
                  "virtio_pci_legacy_dev", "virtio_pci"]
EXTRA_MODULES = ["virtio_balloon"]

# acpi=noirq: PCI interrupts are routed from the BIOS's MP table, not by
# ACPI.  ACPI's routing evaluates the pc machine's \_SB.PCI0._PRT, a
# 128-round AML While loop: under TCG that took about 3 s of every boot
# (virtio_pci's insmod, 6.1: READY at 8.2 s, 4.9 s with acpi=noirq; 6.12 and
# 7.3 alike), and on the debug kernel it overran ACPICA's 30 s loop limit.
# ACPI still enumerates the PCI bus, so hotplug (acpiphp) works, for slots
# the MP table lists: those with a device at boot (a balloon unplugged and
# plugged again works; a slot empty at boot gets "can't find IRQ for PCI INT
# A").  Tests boot with the devices they plug.
KERNEL_ARGS = ("console=ttyS0,115200 loglevel=5 panic=-1 oops=panic "
               "slub_debug=FZPU page_poison=1 mitigations=off "
               "8250.nr_uarts=4 no_timer_check rdinit=/init acpi=noirq")

INIT_SCRIPT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs -o mode=1777 tmpfs /tmp
mkdir -p /dev/shm /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t devpts devpts /dev/pts
out=/dev/ttyS1
stty -F /dev/ttyS1 raw -echo 2>/dev/null
stty -F /dev/ttyS2 raw -echo 2>/dev/null
. /mclab/run.conf
fail() {
	printf '\nMCLAB-SETUP-FAILED %s\n' "$*" > $out
	echo "MCLAB-TAINT $(cat /proc/sys/kernel/tainted)" > /dev/console
	poweroff -f
}
for m in $MCLAB_BASE_MODULES; do
	insmod /lib/modules/mc/$m.ko || fail "insmod $m"
done
case "$MCLAB_DRIVER" in
memcoop) insmod /lib/modules/mc/memcoop.ko $MCLAB_PARAMS || fail "insmod memcoop.ko" ;;
stock) insmod /lib/modules/mc/virtio_balloon.ko $MCLAB_PARAMS || fail "insmod virtio_balloon.ko" ;;
esac
if [ -n "$MCLAB_HOST_USR" ]; then	# --host-usr: the host's /usr, read-only (9p)
	for m in $MCLAB_9P_MODULES; do insmod /lib/modules/mc/$m.ko || fail "insmod $m"; done
	o=trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144
	mkdir -p /usr /etc/java-17-openjdk /etc/alternatives
	mount -t 9p -o $o hostusr /usr || fail "mount the host's /usr"
	mount -t 9p -o $o hostjava /etc/java-17-openjdk 2> /dev/null
	mount -t 9p -o $o hostalt /etc/alternatives 2> /dev/null
	ln -s usr/lib64 /lib64
	ln -s /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu
	export PATH=$PATH:/usr/sbin:/usr/bin
fi
echo "MCLAB-READY $(cut -d' ' -f1 /proc/uptime)" > $out
cd /tmp
/bin/sh /mclab/cmd > $out 2>&1 < /dev/null
rc=$?
if [ -w /sys/kernel/debug/kmemleak ]; then
	# the debug kernel: a leak into our modules fails the run (kmemleak_problems())
	grep -E '^(memcoop|mctest_[a-z_]*) ' /proc/modules | while read n s u d st a rest; do
		echo "MCLAB-MODULE $n $a $s" > /dev/console
	done
	[ "$MCLAB_DRIVER" = memcoop ] && rmmod memcoop 2> /dev/null
	# kmemleak reports an object found unreferenced by two scans in a
	# row (the first notes its checksum) and at least 5 s old when the
	# second starts: the first scan runs during those 5 s
	# (uptime in centiseconds; 5.1 s, for the jiffy the age is rounded to)
	cs() { tr -d . < /proc/uptime | cut -d' ' -f1; }
	t=$(cs)
	echo scan > /sys/kernel/debug/kmemleak
	while [ $(cs) -lt $((t + 510)) ]; do sleep 0.1; done
	echo scan > /sys/kernel/debug/kmemleak
	sed 's/^/MCLAB-KMEMLEAK /' /sys/kernel/debug/kmemleak > /dev/console
fi
printf '\nMCLAB-EXIT %d\n' $rc > $out
echo "MCLAB-TAINT $(cat /proc/sys/kernel/tainted)" > /dev/console
poweroff -f
"""


def _log(msg):
    if os.environ.get("MCLAB_VERBOSE"):
        sys.stderr.write("mclab: %s\n" % msg)


# ---------------------------------------------------------------------------
# temporary directories of the tests

_tmpdirs = []


def mkdtemp(name):
    """A private directory $TMPDIR/memcoop-test-NAME-XXXXXXXX for a test.
    cleanup_tmp() removes it; a script that ends without calling it (an
    uncaught exception) removes it at exit; SIGTERM or SIGHUP, once
    install_signal_handlers() ran, count as a failure and keep it."""
    path = tempfile.mkdtemp(prefix="%s%s-" % (TMP_PREFIX, name))
    _tmpdirs.append(path)
    return path


def cleanup_tmp(failed=False, _in_handler=False):
    """Remove the directories mkdtemp() made.  When the test @failed (or
    $MCLAB_KEEP is set) they are kept for debugging, and their paths
    printed."""
    keep = failed or os.environ.get("MCLAB_KEEP")
    while _tmpdirs:
        path = _tmpdirs.pop()
        if not keep:
            shutil.rmtree(path, ignore_errors=True)
        elif _in_handler:       # print() is not reentrant
            os.write(sys.stdout.fileno(), b"kept for debugging: %s\n" % path.encode())
        else:
            print("kept for debugging: %s" % path, flush=True)


atexit.register(cleanup_tmp)


# ---------------------------------------------------------------------------
# cpio (newc), written directly so that no root or external tool is needed

class Cpio:
    def __init__(self):
        self.parts = []
        self.ino = 1000

    def _entry(self, name, mode, data=b"", rdev=(0, 0), mtime=0):
        name_b = name.encode() + b"\0"
        hdr = "070701" + "".join("%08x" % v for v in (
            self.ino, mode, 0, 0, 2 if stat.S_ISDIR(mode) else 1, mtime,
            len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0))
        self.ino += 1
        buf = hdr.encode() + name_b
        buf += b"\0" * (-len(buf) % 4)
        buf += data
        buf += b"\0" * (-len(buf) % 4)
        self.parts.append(buf)

    def dir(self, name):
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name, data, mode=0o755):
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name, target):
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name, major, minor, mode=0o600):
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def data(self, trailer=True):
        if trailer:
            self._entry("TRAILER!!!", 0)
        return b"".join(self.parts)


# ---------------------------------------------------------------------------
# the lab: where things are, the kernel, the initramfs

@contextlib.contextmanager
def _flock(path):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _default_builddir():
    b = os.environ.get("MCLAB_BUILDDIR")
    if b:
        return b
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(os.path.dirname(os.path.dirname(here)), "build")


# ---------------------------------------------------------------------------
# guest kernels, their headers and other Debian releases: fetched with apt,
# cached in ~/.cache/memcoop ($MCLAB_CACHE), never installed on the host
#
#   kernel/VERSION/    vmlinuz, modules/*.ko (the virtio ones), builtin.txt
#   headers/VERSION/   linux-headers-VERSION unpacked (kernels of the host's
#                      release whose headers are not installed in /usr/src)
#   apt/SUITES/        private apt lists for another release (trixie for the
#                      newest kernels, bookworm-backports for QEMU 10)
#   chroot/trixie/     a Debian 13 tree (mmdebstrap) that builds modules for
#                      trixie kernels: their kbuild needs glibc 2.38
#   qemu/VERSION/      a QEMU unpacked from bookworm-backports

# A kernel's Debian release, from the suffix of its version.
_TRIXIE_SUFFIX = "+deb13"
# Private apt roots: name -> suites on the host's own mirror.
APT_ROOTS = {
    "trixie": ["trixie", "trixie-backports"],
    "bookworm-backports": ["bookworm-backports"],
}
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
# Packages of the chroot that builds modules for trixie kernels.
CHROOT_PACKAGES = ["make", "gcc", "libc6-dev", "sparse", "dkms", "kmod", "pahole",
                   "xz-utils", "python3", "binutils"]
APT_LISTS_MAX_AGE = 24 * 3600


def cache_dir():
    return os.environ.get("MCLAB_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "memcoop")


def _mirror():
    """The host's Debian mirror (its apt sources), never a name of ours."""
    for path in ["/etc/apt/sources.list.d/debian.sources"] + \
            glob.glob("/etc/apt/sources.list.d/*.sources"):
        try:
            text = open(path).read()
        except OSError:
            continue
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"(?m)^URIs:\s*(\S+)", stanza)
            suites = re.search(r"(?m)^Suites:\s*(.*)$", stanza)
            if uris and suites and re.search(r"\bbookworm\b(?!-)", suites.group(1)):
                return uris.group(1)
    try:
        for line in open("/etc/apt/sources.list"):
            m = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", line)
            if m:
                return m.group(1)
    except OSError:
        pass
    raise LabError("no Debian bookworm mirror in the host's apt sources")


class Apt:
    """apt-get/apt-cache on the host's lists (@root None) or on a private
    list of APT_ROOTS[@root] in the cache, leaving the host's apt as it is."""

    def __init__(self, root=None):
        self.root = root
        self.opts = []
        if root is None:
            return
        d = os.path.join(cache_dir(), "apt", root)
        for sub in ("lists/partial", "cache/archives/partial"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        src = os.path.join(d, "sources.list")
        self.opts = ["-o", "Dir::Etc::sourcelist=" + src, "-o", "Dir::Etc::sourceparts=-",
                     "-o", "Dir::State::Lists=" + os.path.join(d, "lists"),
                     "-o", "Dir::Cache=" + os.path.join(d, "cache")]
        with _flock(os.path.join(d, ".lock")):
            stamp = os.path.join(d, ".updated")
            fresh = os.path.exists(stamp) and \
                time.time() - os.stat(stamp).st_mtime < APT_LISTS_MAX_AGE
            if fresh:
                return
            mirror = _mirror()
            with open(src, "w") as f:
                for suite in APT_ROOTS[root]:
                    f.write("deb [signed-by=%s] %s %s main\n" % (KEYRING, mirror, suite))
            sys.stderr.write("mclab: apt-get update (%s)\n" % " ".join(APT_ROOTS[root]))
            r = subprocess.run(["apt-get"] + self.opts + ["-q", "update"],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise LabError("apt-get update for %s failed: %s" % (root, r.stderr.strip()))
            open(stamp, "w").close()

    def pkgnames(self, prefix):
        r = subprocess.run(["apt-cache"] + self.opts + ["pkgnames", prefix],
                           capture_output=True, text=True)
        return r.stdout.split()

    def depends(self, pkg):
        r = subprocess.run(["apt-cache"] + self.opts + ["show", "--no-all-versions", pkg],
                           capture_output=True, text=True)
        m = re.search(r"(?m)^Depends: (.*)$", r.stdout)
        return [re.split(r"[\s(]", d.strip())[0] for d in m.group(1).split(",")] if m else []

    def download(self, pkgs, dest):
        """The .deb files of @pkgs, downloaded into @dest."""
        r = subprocess.run(["apt-get"] + self.opts + ["-q", "download"] + pkgs, cwd=dest,
                           capture_output=True, text=True)
        debs = glob.glob(os.path.join(dest, "*.deb"))
        if r.returncode != 0 or len(debs) < len(pkgs):
            raise LabError("apt-get download %s failed: %s" % (" ".join(pkgs),
                                                               r.stderr.strip()))
        return debs


def _apt_for(ver):
    return Apt("trixie" if _TRIXIE_SUFFIX in ver else None)


def _vkey(v):
    return [int(x) if x.isdigit() else x for x in re.split(r"[.+-]", v)]


def kernel_series(ver):
    """"6.1" for 6.1.0-57-amd64, "6.12" for 6.12.117+deb12-amd64, "debug"
    for the lab's debug kernel (6.12.117-memcoop-debug)."""
    if debugkernel.is_debug_release(ver):
        return "debug"
    m = re.match(r"^(\d+\.\d+)", ver)
    if not m:
        raise LabError("not a kernel version: %r" % ver)
    return m.group(1)


def resolve_kernel(spec):
    """The `uname -r` of the guest kernel @spec names: a full version
    (6.12.117+deb12-amd64) as it is; a series (6.1, 6.12, 7.3): the one
    whose headers are installed in /usr/src, else the newest Debian has
    (6.1 and 6.12 from the host's release, newer ones from trixie and
    trixie-backports); "newest": the newest trixie-backports kernel;
    "debug": the lab's debug kernel (tests/lab/debugkernel.py), built
    when missing."""
    if spec == "debug":
        return tree_release(debugkernel.ensure())
    if debugkernel.is_debug_release(spec):
        return spec
    if re.match(r"^\d+\.\d+[.-]\S*-amd64$", spec):
        return spec
    if spec == "newest":
        rx = re.compile(r"^linux-image-(\d+\.\d+\.\d+%s-amd64)$" % re.escape(_TRIXIE_SUFFIX))
        apt = Apt("trixie")
        found = [m.group(1) for m in map(rx.match, apt.pkgnames("linux-image-")) if m]
    else:
        if not re.match(r"^\d+\.\d+$", spec):
            raise LabError("--kernel %r: want a series (6.12), newest or a version" % spec)
        installed = [os.path.basename(p)[len("linux-headers-"):] for p in
                     glob.glob("/usr/src/linux-headers-%s[.-]*-amd64" % spec)]
        installed = [v for v in installed if kernel_series(v) == spec]
        if installed:
            return max(installed, key=_vkey)
        rx = re.compile(r"^linux-image-(%s[.-]\d+(?:\+deb12)?-amd64)$" % re.escape(spec))
        found = [m.group(1) for m in map(rx.match, Apt().pkgnames("linux-image-" + spec)) if m]
        if not found:
            rx = re.compile(r"^linux-image-(%s\.\d+%s-amd64)$" % (re.escape(spec),
                                                                  re.escape(_TRIXIE_SUFFIX)))
            found = [m.group(1) for m in map(rx.match, Apt("trixie").pkgnames(
                "linux-image-" + spec)) if m]
    if not found:
        raise LabError("no Debian kernel for %r" % spec)
    return max(found, key=_vkey)


def tree_release(kdir):
    """The `uname -r` of the kernel a build tree is for."""
    path = os.path.join(kdir, "include", "generated", "utsrelease.h")
    try:
        m = re.search(r'UTS_RELEASE "([^"]+)"', open(path).read())
    except OSError as e:
        raise LabError("%s: not a kernel build tree (%s)" % (kdir, e))
    if not m:
        raise LabError("no UTS_RELEASE in %s" % path)
    return m.group(1)


def _builtin_modules(kdir):
    try:
        return set(open(os.path.join(kdir, "modules", "builtin.txt")).read().split())
    except FileNotFoundError:
        return set()            # a 6.1 cache: every virtio part is a module


def fetch_kernel(ver):
    """The cache directory of kernel @ver (vmlinuz, modules/), fetched once
    (the debug kernel: built once)."""
    if debugkernel.is_debug_release(ver):
        return debugkernel.boot_dir(ver)
    kdir = os.path.join(cache_dir(), "kernel", ver)
    os.makedirs(kdir, exist_ok=True)
    done = os.path.join(kdir, ".complete")
    with _flock(os.path.join(kdir, ".lock")):
        if not os.path.exists(done):
            _fetch_kernel(ver, kdir)
            open(done, "w").close()
    return kdir


# Direct boot: QEMU starts an ELF vmlinux at its PVH entry (the Xen
# PHYS32_ENTRY note, CONFIG_PVH: Debian's kernels have it), so the guest
# skips the bzImage's decompressor, which runs emulated under TCG: 6.1's
# xz payload (66 MB) took several seconds of every boot (qemu until
# poweroff, `true` as the program, load 4: bzImage 11.7, 17.3, 17.3 s;
# vmlinux 8.5, 4.8, 8.4 s, alternating).
PVH_NOTE = 0x12         # XEN_ELFNOTE_PHYS32_ENTRY


def _bzimage_payload(data):
    """The compressed kernel inside a bzImage: (format, bytes), or None."""
    if len(data) < 0x250 or data[0x202:0x206] != b"HdrS":
        return None
    setup = (data[0x1f1] or 4) + 1
    off, length = (int.from_bytes(data[0x248 + 4 * i:0x24c + 4 * i], "little")
                   for i in range(2))
    payload = data[setup * 512 + off:setup * 512 + off + length]
    for fmt, magic in (("xz", b"\xfd7zXZ\x00"), ("zstd", b"\x28\xb5\x2f\xfd"),
                       ("gzip", b"\x1f\x8b")):
        if payload.startswith(magic):
            return fmt, payload
    return None


def _has_pvh_entry(elf):
    """True when the ELF image @elf (bytes) has a Xen PHYS32_ENTRY note."""
    if elf[:5] != b"\x7fELF\x02":
        return False
    phoff = int.from_bytes(elf[32:40], "little")
    phsize, phnum = (int.from_bytes(elf[54 + 2 * i:56 + 2 * i], "little") for i in range(2))
    for i in range(phnum):
        ph = elf[phoff + i * phsize:phoff + (i + 1) * phsize]
        if int.from_bytes(ph[0:4], "little") != 4:         # PT_NOTE
            continue
        pos = int.from_bytes(ph[8:16], "little")
        end = pos + int.from_bytes(ph[32:40], "little")
        while pos + 12 <= end:
            namesz, descsz, typ = (int.from_bytes(elf[pos + 4 * j:pos + 4 * j + 4], "little")
                                   for j in range(3))
            name = elf[pos + 12:pos + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and typ == PVH_NOTE:
                return True
            pos += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def boot_kernel(kdir):
    """What QEMU's -kernel gets for the kernel in @kdir: its vmlinux, made
    once from the vmlinuz, when that has a PVH entry; else the vmlinuz
    (always with $MCLAB_BZIMAGE set)."""
    vmlinuz = os.path.join(kdir, "vmlinuz")
    if os.environ.get("MCLAB_BZIMAGE"):
        return vmlinuz
    elf = os.path.join(kdir, "vmlinux-pvh")
    nope = os.path.join(kdir, ".no-pvh")

    def known():        # made (or found impossible) since the vmlinuz changed
        for p, use in ((elf, elf), (nope, vmlinuz)):
            if os.path.exists(p) and os.path.getmtime(p) >= os.path.getmtime(vmlinuz):
                return use
        return None

    if known():
        return known()
    with _flock(os.path.join(kdir, ".pvh.lock")):
        if known():
            return known()
        with open(vmlinuz, "rb") as f:
            found = _bzimage_payload(f.read())
        out = None
        if found is not None:
            fmt, payload = found
            try:        # a payload that does not decompress: boot the vmlinuz
                if fmt == "xz":
                    out = lzma.LZMADecompressor().decompress(payload)
                elif fmt == "gzip":
                    out = zlib.decompress(payload, 16 + zlib.MAX_WBITS)
            except (lzma.LZMAError, zlib.error, EOFError):
                out = None
            if fmt == "zstd" and shutil.which("zstd"):
                # kbuild appends the size (4 bytes) that zstd calls trailing junk
                r = subprocess.run(["zstd", "-dcq"], input=payload[:-4], capture_output=True)
                out = r.stdout if r.returncode == 0 else None
        if out is None or not _has_pvh_entry(out):
            open(nope, "w").close()
            return vmlinuz
        tmp = elf + ".tmp%d" % os.getpid()
        with open(tmp, "wb") as f:
            f.write(out)
        os.rename(tmp, elf)
    return elf


def _fetch_kernel(ver, kdir):
    pkg = "linux-image-" + ver
    apt = _apt_for(ver)
    names = apt.pkgnames(pkg)
    if pkg not in names and pkg + "-unsigned" in names:
        pkg += "-unsigned"
    sys.stderr.write("mclab: fetching %s (apt-get download)\n" % pkg)
    tmp = tempfile.mkdtemp(prefix="mclab-kernel-", dir=kdir)
    try:
        # trixie-backports' linux-image-* since 7.x is a meta package: the
        # kernel is in linux-binary-*, its modules in linux-modules-*
        pkgs = [pkg] + [d for d in apt.depends(pkg)
                        if d.startswith(("linux-binary-", "linux-modules-", "linux-base-"))]
        x = os.path.join(tmp, "x")
        for deb in apt.download(pkgs, tmp):
            subprocess.run(["dpkg-deb", "-x", deb, x], check=True)
        # /boot/vmlinuz-VER, or /usr/lib/modules/VER/vmlinuz (trixie-backports 7.x)
        vmlinuz = glob.glob(os.path.join(x, "boot", "vmlinuz-*")) + \
            glob.glob(os.path.join(x, "usr", "lib", "modules", "*", "vmlinuz"))
        mods_roots = [os.path.join(x, "lib", "modules"), os.path.join(x, "usr", "lib", "modules")]
        if not vmlinuz:
            raise LabError("%s has no vmlinuz" % pkg)
        shutil.copy(vmlinuz[0], os.path.join(kdir, "vmlinuz"))
        mdir = os.path.join(kdir, "modules")
        os.makedirs(mdir, exist_ok=True)
        builtin = set()
        for path in [p for r in mods_roots for p in glob.glob(os.path.join(r, "*", "modules.builtin"))]:
            builtin |= {os.path.basename(line.strip()).split(".ko")[0]
                        for line in open(path)}
        mine = []
        for m in VIRTIO_MODULES + EXTRA_MODULES:
            found = [p for r in mods_roots for p in glob.glob(
                os.path.join(r, "*", "kernel", "**", m + ".ko*"), recursive=True)]
            if not found:
                if m in builtin:
                    mine.append(m)
                    continue
                raise LabError("%s has no module %s" % (pkg, m))
            data = open(found[0], "rb").read()
            if found[0].endswith(".xz"):
                data = lzma.decompress(data)
            with open(os.path.join(mdir, m + ".ko"), "wb") as f:
                f.write(data)
        with open(os.path.join(mdir, "builtin.txt"), "w") as f:
            f.write("".join(m + "\n" for m in mine))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --host-usr: the 9p modules, in load order (those a kernel lacks as a
# module, fscache in 6.12, are skipped), and the host directories shared
# read-only: mount tag -> path (OpenJDK's conf links point to hostjava,
# /usr/bin/java to hostalt).
P9_MODULES = ["netfs", "fscache", "9pnet", "9pnet_virtio", "9p"]
HOST_SHARES = {"hostusr": "/usr", "hostjava": "/etc/java-17-openjdk",
               "hostalt": "/etc/alternatives"}


def fetch_9p_modules(ver):
    """[(name, path)] of the 9p modules of kernel @ver, in load order,
    unpacked once from its Debian package into the kernel's cache; none
    for the debug kernel, which has 9p built in."""
    if debugkernel.is_debug_release(ver):
        if debugkernel.config_option(ver, "CONFIG_9P_FS") != "y":
            raise LabError("debug kernel %s has no 9p built in: --host-usr cannot work" % ver)
        return []
    mdir = os.path.join(fetch_kernel(ver), "modules-9p")
    os.makedirs(mdir, exist_ok=True)
    with _flock(os.path.join(mdir, ".lock")):
        if not os.path.exists(os.path.join(mdir, ".complete")):
            apt = _apt_for(ver)
            pkg = "linux-image-" + ver
            if pkg not in apt.pkgnames(pkg):
                pkg += "-unsigned"
            pkgs = [pkg] + [d for d in apt.depends(pkg) if d.startswith("linux-modules-")]
            sys.stderr.write("mclab: fetching the 9p modules of %s\n" % ver)
            tmp = tempfile.mkdtemp(prefix="mclab-9p-", dir=mdir)
            try:
                for deb in apt.download(pkgs, tmp):
                    subprocess.run(["dpkg-deb", "-x", deb, tmp], check=True)
                for m in P9_MODULES:
                    found = glob.glob(os.path.join(tmp, "**", m + ".ko*"), recursive=True)
                    if found:
                        data = open(found[0], "rb").read()
                        if found[0].endswith(".xz"):
                            data = lzma.decompress(data)
                        with open(os.path.join(mdir, m + ".ko"), "wb") as f:
                            f.write(data)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            open(os.path.join(mdir, ".complete"), "w").close()
    mods = [(m, os.path.join(mdir, m + ".ko")) for m in P9_MODULES
            if os.path.exists(os.path.join(mdir, m + ".ko"))]
    if "9p" not in dict(mods):
        raise LabError("kernel %s has no 9p module: --host-usr cannot work" % ver)
    return mods


def kernel_tree(ver):
    """Where to build modules for kernel @ver: (headers directory, command
    prefix to run make in).  Installed headers (/usr/src) as they are;
    other kernels of the host's release unpacked into the cache; trixie
    kernels in the Debian 13 chroot (the prefix enters it)."""
    if debugkernel.is_debug_release(ver):
        debugkernel.boot_dir(ver)
        return debugkernel.find_tree(ver), []
    installed = "/usr/src/linux-headers-" + ver
    if os.path.exists(os.path.join(installed, "Makefile")):
        return installed, []
    if _TRIXIE_SUFFIX in ver:
        chroot_with_headers(ver)
        return installed, chroot_prefix()
    return _unpacked_headers(ver), []


def _unpacked_headers(ver):
    hdir = os.path.join(cache_dir(), "headers", ver)
    tree = os.path.join(hdir, "usr", "src", "linux-headers-" + ver)
    os.makedirs(hdir, exist_ok=True)
    done = os.path.join(hdir, ".complete")
    with _flock(os.path.join(cache_dir(), "headers", ".lock-" + ver)):
        if os.path.exists(done):
            return tree
        apt = Apt()
        pkg = "linux-headers-" + ver
        pkgs = [pkg] + [d for d in apt.depends(pkg)
                        if d.startswith(("linux-headers-", "linux-kbuild-"))]
        sys.stderr.write("mclab: fetching %s (apt-get download)\n" % " ".join(pkgs))
        tmp = tempfile.mkdtemp(prefix="mclab-headers-", dir=hdir)
        try:
            for deb in apt.download(pkgs, tmp):
                subprocess.run(["dpkg-deb", "-x", deb, hdir], check=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        # Debian's Makefile includes the common tree by its /usr/src path
        mk = os.path.join(tree, "Makefile")
        text = open(mk).read()
        new = re.sub(r"(?m)^include /usr/src/", "include %s/usr/src/" % hdir, text)
        if new == text:
            raise LabError("%s: no 'include /usr/src/...' line to point at the cache" % mk)
        with open(mk, "w") as f:
            f.write(new)
        open(done, "w").close()
    return tree


def _chroot_dir():
    return os.path.join(cache_dir(), "chroot", "trixie")


def chroot_root():
    """The host path of the trixie chroot's "/"."""
    return _chroot_dir()


def chroot_prefix():
    """The command prefix that runs a command in the trixie chroot, with
    the source tree, the build directories and $TMPDIR at their own paths."""
    return [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "mclab"),
            "in-chroot", "--"]


def run_in_chroot(argv, stdout=None):
    """Run @argv in the trixie chroot (as root, in a mount namespace of its
    own: /proc, /dev, the project tree, $TMPDIR and the cwd bound at their
    own paths); its exit status."""
    root = _chroot_dir()
    here = os.path.dirname(os.path.abspath(__file__))
    binds = {os.path.dirname(os.path.dirname(here)), os.getcwd(),
             os.path.realpath(os.environ.get("TMPDIR", "/tmp"))}
    for v in ("MCLAB_BUILDDIR", "MESON_BUILD_ROOT", "MESON_SOURCE_ROOT"):
        if os.environ.get(v):
            binds.add(os.path.realpath(os.environ[v]))
    for b in os.environ.get("MCLAB_CHROOT_BIND", "").split(":"):
        if b:
            binds.add(os.path.realpath(b))
    script = ["set -e", "mount --make-rprivate /",
              "mount -t proc proc %s/proc" % shlex.quote(root),
              "mount --rbind /dev %s/dev" % shlex.quote(root)]
    for b in sorted(binds):
        if not os.path.isdir(b):
            continue
        script += ["mkdir -p %s" % shlex.quote(root + b),
                   "mount --bind %s %s" % (shlex.quote(b), shlex.quote(root + b))]
    script += ["exec chroot %s /bin/sh -c 'cd \"$0\" && exec \"$@\"' \"$PWD\" \"$@\"" %
               shlex.quote(root)]
    env = dict(os.environ, PATH="/usr/sbin:/usr/bin:/sbin:/bin")
    return subprocess.run(["unshare", "--mount", "sh", "-c", "\n".join(script), "sh"] + argv,
                          env=env, stdout=stdout).returncode


def _chroot():
    """The trixie chroot, made with mmdebstrap when missing."""
    root = _chroot_dir()
    os.makedirs(os.path.dirname(root), exist_ok=True)
    with _flock(root + ".lock"):
        if os.path.exists(os.path.join(root, ".complete")):
            return root
        if os.path.exists(root):
            shutil.rmtree(root)
        mirror = _mirror()
        t0 = time.monotonic()
        sys.stderr.write("mclab: building the Debian 13 chroot %s (mmdebstrap)\n" % root)
        srcs = ["deb [signed-by=%s] %s %s main" % (KEYRING, mirror, s)
                for s in APT_ROOTS["trixie"]]
        r = subprocess.run(["mmdebstrap", "--variant=apt", "--quiet",
                            "--include=" + ",".join(CHROOT_PACKAGES),
                            "trixie", root] + srcs, capture_output=True, text=True)
        if r.returncode != 0:
            shutil.rmtree(root, ignore_errors=True)
            raise LabError("mmdebstrap failed: %s" % r.stderr.strip()[-2000:])
        open(os.path.join(root, ".complete"), "w").close()
        sys.stderr.write("mclab: chroot ready in %.0f s\n" % (time.monotonic() - t0))
    return root


def chroot_with_headers(ver):
    """The chroot, with linux-headers-@ver installed in it."""
    root = _chroot()
    with _flock(root + ".lock"):
        if not os.path.exists(os.path.join(root, "usr", "src", "linux-headers-" + ver,
                                           "Makefile")):
            sys.stderr.write("mclab: installing linux-headers-%s in the chroot\n" % ver)
            for argv in (["apt-get", "-q", "update"],
                         ["apt-get", "-q", "-y", "--no-install-recommends", "install",
                          "linux-headers-" + ver]):
                if run_in_chroot(argv, stdout=sys.stderr) != 0:
                    raise LabError("in the chroot: %s failed" % " ".join(argv))
        _checker_valid(root, ver)
    return root


# Debian's linux-kbuild (7.x) lacks scripts/checker-valid.sh, which the
# kernel's Makefile runs before C=1/2 (prints 1 when the checker can parse
# these headers; without the script sparse is always switched off).  Ours
# asks the same question: does the checker know __typeof_unqual__, which
# 7.x's headers use?  (Debian's sparse 0.6.4 does not.)
CHECKER_VALID = """#!/bin/sh
# written by the memcoop lab (tests/lab/mclab.py): missing from linux-kbuild
command -v "$1" >/dev/null || { echo 0; exit 0; }
t=$(mktemp) || exit 1
printf 'int f(const int *p) { __typeof_unqual__(*p) x = *p; return x; }\\n' > "$t"
if "$@" "$t" 2>&1 | grep -q error; then echo 0; else echo 1; fi
rm -f "$t"
"""


def _checker_valid(root, ver):
    common = os.path.join(root, "usr", "src", "linux-headers-" + ver)
    scripts = os.path.realpath(os.path.join(common, "scripts"))
    if not scripts.startswith(root):        # an absolute link: inside the chroot
        scripts = root + scripts
    path = os.path.join(scripts, "checker-valid.sh")
    if not os.path.exists(path):
        with open(path, "w") as f:
            f.write(CHECKER_VALID)
        os.chmod(path, 0o755)


# QEMU from bookworm-backports, unpacked beside the host's: the packages
# with the binary and its firmware (the libraries it needs are bookworm's,
# checked with ldd when it is unpacked).
QEMU_PACKAGES = ["qemu-system-x86", "qemu-system-common", "qemu-system-data", "seabios"]


def fetch_qemu(series):
    """QEMU @series ("10") from bookworm-backports, unpacked once into
    ~/.cache/memcoop/qemu/VERSION; returns (binary, [firmware dirs for -L])."""
    if series in ("", "host", "7.2"):
        return shutil.which("qemu-system-x86_64") or "qemu-system-x86_64", []
    apt = Apt("bookworm-backports")
    r = subprocess.run(["apt-cache"] + apt.opts + ["show", "--no-all-versions",
                                                    "qemu-system-x86"],
                       capture_output=True, text=True)
    m = re.search(r"(?m)^Version: (?:\d+:)?(\S+)", r.stdout)
    if not m or not m.group(1).startswith(series + "."):
        raise LabError("bookworm-backports has no QEMU %s (it has %s)" % (
            series, m.group(1) if m else "none"))
    ver = m.group(1)
    qdir = os.path.join(cache_dir(), "qemu", ver)
    x = os.path.join(qdir, "root")
    binary = os.path.join(x, "usr", "bin", "qemu-system-x86_64")
    fw = [os.path.join(x, "usr", "share", "qemu"), os.path.join(x, "usr", "share", "seabios")]
    os.makedirs(qdir, exist_ok=True)
    with _flock(os.path.join(qdir, ".lock")):
        if os.path.exists(os.path.join(qdir, ".complete")):
            return binary, fw
        sys.stderr.write("mclab: fetching QEMU %s from bookworm-backports\n" % ver)
        tmp = tempfile.mkdtemp(prefix="mclab-qemu-", dir=qdir)
        try:
            for deb in apt.download(QEMU_PACKAGES, tmp):
                subprocess.run(["dpkg-deb", "-x", deb, x], check=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        r = subprocess.run(["ldd", binary], capture_output=True, text=True)
        missing = [line.split()[0] for line in r.stdout.splitlines() if "not found" in line]
        if r.returncode != 0 or missing:
            raise LabError("QEMU %s cannot run here: libraries missing: %s" % (
                ver, " ".join(missing) or r.stderr.strip()))
        open(os.path.join(qdir, ".complete"), "w").close()
    return binary, fw


def build_module(ver, out):
    """memcoop.ko from this source tree for kernel @ver, built in @out
    (W=1); its path.  Rebuilt by make when a source changed."""
    here = os.path.dirname(os.path.abspath(__file__))
    src = os.path.join(os.path.dirname(os.path.dirname(here)), "guest-driver", "kernel")
    kdir, prefix = kernel_tree(ver)
    os.makedirs(out, exist_ok=True)
    argv = ["sh", os.path.join(src, "kbuild-out.sh"), src, out, "--"] + prefix + \
        ["make", "-s", "-C", kdir, "M=" + out,
         "MEMCOOP_PROTO=" + os.path.join(os.path.dirname(os.path.dirname(src)), "proto"),
         "W=1", "modules"]
    env = dict(os.environ, MCLAB_CHROOT_BIND=out)
    with _flock(os.path.join(out, ".lock")):
        r = subprocess.run(argv, capture_output=True, text=True, env=env)
    ko = os.path.join(out, "memcoop.ko")
    if r.returncode != 0 or not os.path.exists(ko):
        raise LabError("building memcoop.ko for %s failed:\n%s%s" % (ver, r.stdout, r.stderr))
    return ko


class Lab:
    """Paths and cached artefacts of one build directory; @module: a
    memcoop.ko to pack instead of the build's (one built by DKMS, say);
    @kernel: the guest kernel (a series such as "6.12", "newest", or a
    full version; see resolve_kernel()) instead of the module's."""

    def __init__(self, builddir=None, module=None, kernel=None):
        self.builddir = os.path.abspath(builddir or _default_builddir())
        if not os.path.isdir(self.builddir):
            raise LabError("build directory %s does not exist "
                           "(meson setup build && ninja -C build)" % self.builddir)
        self.workdir = os.path.join(self.builddir, "mclab")
        os.makedirs(self.workdir, exist_ok=True)
        self.ko = os.path.join(self.builddir, "guest-driver", "kernel", "memcoop.ko")
        self.module_given = module is not None
        if self.module_given:
            self.ko = os.path.abspath(module)
            if not os.path.isfile(self.ko):
                raise LabError("module %s does not exist" % self.ko)
        self.cache = cache_dir()
        self.kernel_spec = kernel
        if kernel:
            self._kernel_ver = resolve_kernel(kernel)
            if not self.module_given:
                self._module_for_kernel()

    # -- the guest kernel -------------------------------------------------
    def kernel_version(self):
        """The guest kernel's `uname -r`: --kernel (resolved), else
        $MCLAB_KERNEL_VERSION, else the vermagic of memcoop.ko."""
        if self.kernel_spec:
            return self._kernel_ver
        v = os.environ.get("MCLAB_KERNEL_VERSION")
        if v:
            return v
        return self._vermagic(self.ko)

    def _vermagic(self, ko):
        if not os.path.exists(ko):
            raise LabError("%s not built (ninja -C %s)" % (ko, self.builddir))
        r = subprocess.run(["modinfo", "-F", "vermagic", ko],
                           capture_output=True, text=True)
        if r.returncode != 0 or not r.stdout.strip():
            raise LabError("modinfo %s failed: %s" % (ko, r.stderr.strip()))
        return r.stdout.split()[0]

    def _module_for_kernel(self):
        """With --kernel: the build's memcoop.ko if it was built for that
        kernel, else one built from this source tree against its headers
        (in <builddir>/mclab/kmod-VERSION, rebuilt when a source changed)."""
        ver = self._kernel_ver
        if os.path.exists(self.ko) and self._vermagic(self.ko) == ver:
            return
        self.ko = build_module(ver, os.path.join(self.workdir, "kmod-" + ver))

    def kernel(self):
        """Fetch (once) the Debian kernel matching memcoop.ko; return
        (-kernel path: boot_kernel(), {module name: path}) for the virtio modules that
        are modules in that kernel (6.12+ has most of them built in)."""
        ver = self.kernel_version()
        kdir = fetch_kernel(ver)
        mods = {}
        builtin = _builtin_modules(kdir)
        for m in VIRTIO_MODULES + EXTRA_MODULES:
            p = os.path.join(kdir, "modules", m + ".ko")
            if os.path.exists(p):
                mods[m] = p
            elif m not in builtin:
                raise LabError("module %s missing from the %s kernel cache" % (m, ver))
        if "virtio_balloon" not in mods:
            raise LabError("the %s kernel has virtio_balloon built in: the lab needs it "
                           "as a module" % ver)
        return boot_kernel(kdir), mods

    # -- programs ----------------------------------------------------------
    def programs(self):
        manifest = os.path.join(self.builddir, "tests", "mclab-programs.txt")
        progs = []
        if os.path.exists(manifest):
            for line in open(manifest):
                line = line.strip()
                if line:
                    progs.append(line)
        return progs

    # -- the initramfs -----------------------------------------------------
    def base_initramfs(self, with_module=True):
        """The initramfs every guest shares (busybox, modules, programs),
        rebuilt when any input changed.  Returns its path."""
        vmlinuz, mods = self.kernel()
        inputs = [shutil.which("busybox") or "/bin/busybox"] + sorted(mods.values()) + \
            sorted(self.programs())
        if with_module:
            inputs.append(self.ko)
        sig = hashlib.sha256(INIT_SCRIPT.encode())
        for p in inputs:
            try:
                st = os.stat(p)
            except FileNotFoundError:
                raise LabError("%s is missing (is the build complete?)" % p)
            sig.update(("%s %d %d\n" % (p, st.st_mtime_ns, st.st_size)).encode())
        digest = sig.hexdigest()[:16]
        # a given module gets its own cache, so that it never replaces the
        # build's base; nor does a base without the module (a stock or
        # no-driver guest): the cleanup below drops other bases of a kind,
        # and two guests of different kinds start side by side in CI
        kind = ("module" if self.module_given else "base") if with_module else "nomodule"
        if self.kernel_spec:            # never replaces the default kernel's
            kind += "-" + self.kernel_version()
        path = os.path.join(self.workdir, "%s-%s.cpio" % (kind, digest))
        with _flock(os.path.join(self.workdir, ".lock")):
            if os.path.exists(path):
                return path
            c = Cpio()
            for d in ["bin", "sbin", "dev", "proc", "sys", "tmp", "etc", "root", "run",
                      "lib", "lib/modules", "lib/modules/mc", "mclab", "var"]:
                c.dir(d)
            c.chardev("dev/console", 5, 1)
            c.chardev("dev/null", 1, 3, 0o666)
            c.file("init", INIT_SCRIPT.encode())
            c.file("bin/busybox", open(inputs[0], "rb").read())
            c.symlink("bin/sh", "busybox")
            c.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"
                   b"nobody:x:65534:65534:nobody:/:/bin/sh\n", 0o644)
            c.file("etc/group", b"root:x:0:\nnogroup:x:65534:\n", 0o644)
            for m, p in mods.items():
                c.file("lib/modules/mc/%s.ko" % m, open(p, "rb").read(), 0o644)
            if with_module:
                c.file("lib/modules/mc/memcoop.ko", open(self.ko, "rb").read(), 0o644)
            seen = set()
            for p in self.programs():
                name = os.path.basename(p)
                if name in seen:
                    raise LabError("two guest programs named %s" % name)
                seen.add(name)
                if name.endswith(".ko"):        # test modules
                    c.file("lib/modules/mc/" + name, open(p, "rb").read(), 0o644)
                else:
                    c.file("bin/" + name, open(p, "rb").read())
            tmp = path + ".tmp%d" % os.getpid()
            with open(tmp, "wb") as f:
                f.write(c.data(trailer=False))
            os.rename(tmp, path)
            # drop older bases of this build (of this kind)
            for old in glob.glob(os.path.join(self.workdir, kind + "-" + "?" * 16 + ".cpio")):
                if old != path:
                    with contextlib.suppress(OSError):
                        os.unlink(old)
        return path

    def initrd(self, dest, cmd, driver="memcoop", modparams=None, base_modules=None,
               host_usr=False):
        """Write base + per-run cpio to @dest (@host_usr: with the 9p
        modules, and the init mounting the host's /usr)."""
        base = self.base_initramfs(with_module=(driver == "memcoop"))
        params = " ".join("%s=%s" % (k, v) for k, v in (modparams or {}).items())
        for k in (modparams or {}):
            if not re.match(r"^[A-Za-z0-9_]+$", k):
                raise LabError("bad module parameter name %r" % k)
        conf = "MCLAB_DRIVER=%s\nMCLAB_PARAMS=%s\nMCLAB_BASE_MODULES=%s\n" % (
            shlex.quote(driver), shlex.quote(params),
            shlex.quote(" ".join(base_modules if base_modules is not None else
                                 [m for m in VIRTIO_MODULES if m in self.kernel()[1]])))
        c = Cpio()
        if host_usr:
            p9 = fetch_9p_modules(self.kernel_version())
            conf += "MCLAB_HOST_USR=1\nMCLAB_9P_MODULES=%s\n" % shlex.quote(
                " ".join(m for m, _ in p9))
            for m, p in p9:
                c.file("lib/modules/mc/%s.ko" % m, open(p, "rb").read(), 0o644)
        c.file("mclab/run.conf", conf.encode(), 0o644)
        c.file("mclab/cmd", (shlex.join(cmd) + "\n").encode(), 0o644)
        for attempt in range(3):
            try:
                b = open(base, "rb")
                break
            except FileNotFoundError:   # a newer build's guest dropped it: make it again
                base = self.base_initramfs(with_module=(driver == "memcoop"))
        else:
            raise LabError("the base initramfs %s keeps vanishing" % base)
        with b, open(dest, "wb") as f:
            shutil.copyfileobj(b, f)
            f.write(c.data())
        return dest


def boot_files(cmd, driver="memcoop", modparams=None, builddir=None, dest=None):
    """For guests started by something else (libvirt): returns
    (kernel, initrd, append).  The initrd is written to @dest (default: a
    file in the build's mclab/ directory that the caller may delete)."""
    lab = Lab(builddir)
    vmlinuz, _ = lab.kernel()
    if dest is None:
        fd, dest = tempfile.mkstemp(prefix="boot-", suffix=".cpio", dir=lab.workdir)
        os.close(fd)
    lab.initrd(dest, cmd, driver, modparams)
    return vmlinuz, dest, KERNEL_ARGS


def console_problems(console):
    """Lines of @console that make a run fail, and the taint verdict."""
    bad = []
    for line in console.splitlines():
        for pat in BAD_CONSOLE:
            if re.search(pat, line):
                bad.append(line.strip())
                break
    bad += kmemleak_problems(console)
    m = re.search(r"MCLAB-TAINT (\d+)", console)
    if m and int(m.group(1)) & ~ALLOWED_TAINT:
        bad.append("kernel tainted: %s (allowed: out-of-tree/unsigned module only)" % m.group(1))
    return bad


def kmemleak_problems(console):
    """The debug kernel's kmemleak objects (MCLAB-KMEMLEAK lines, printed by
    the guest after the program and an rmmod) that were allocated by one
    of our modules: a frame named [memcoop] or [mctest_*], or, for a
    module unloaded meanwhile, an address inside its MCLAB-MODULE range."""
    ranges = []
    for m in re.finditer(r"MCLAB-MODULE (\S+) 0x([0-9a-f]+) (\d+)", console):
        base = int(m.group(2), 16)
        ranges.append((m.group(1), base, base + int(m.group(3))))
    objects = []
    for line in console.splitlines():
        m = re.search(r"MCLAB-KMEMLEAK (.*)", line)
        if not m:
            continue
        text = m.group(1)
        if text.startswith("unreferenced object"):
            objects.append([text])
        elif objects:
            objects[-1].append(text.strip())
    bad = []
    for obj in objects:
        owner = frame = None
        for text in obj[1:]:
            n = re.search(r"\[(memcoop|mctest_\w+)\]", text)
            if n:
                owner, frame = n.group(1), text
                break
            a = re.search(r"\[<([0-9a-f]+)>\]", text)
            if a:
                addr = int(a.group(1), 16)
                for name, lo, hi in ranges:
                    if lo <= addr < hi:
                        owner, frame = name, "%s (+0x%x in the unloaded module)" % (
                            text, addr - lo)
                        break
            if owner:
                break
        if owner:
            bad.append("kmemleak: memory leak in %s: %s, allocated at %s" % (
                owner, obj[0].rstrip(":"), frame))
    return bad


# ---------------------------------------------------------------------------
# QMP

def fake_qmp(path, lines, reply=None):
    """A one-client stand-in for QEMU's QMP socket at @path, for tests of
    the QMP clients (ours, memcoopd's): writes @lines (bytes, each ended
    with CRLF as QEMU does), reads the client's first command into the
    returned dict's "first" and answers it with @reply (bytes) if given.
    Returns (listening socket, serving thread, that dict)."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    got = {}

    def serve():
        try:
            conn, _ = srv.accept()
        except OSError:
            return
        with conn:
            conn.sendall(b"".join(line + b"\r\n" for line in lines))
            conn.settimeout(30)
            buf = b""
            try:
                while b"\n" not in buf:
                    b = conn.recv(4096)
                    if not b:
                        return
                    buf += b
                got["first"] = buf.split(b"\n")[0]
                if reply is not None:
                    conn.sendall(reply)
            except OSError:
                return
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return srv, t, got


class QMP:
    def __init__(self, path, timeout=30):
        self.events = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise LabError("cannot connect to QMP socket %s" % path)
                time.sleep(0.05)
        self.sock.settimeout(timeout)
        self.buf = b""
        # QEMU can write an event (RESUME as the guest starts) to a client
        # it has just accepted before its greeting: keep such events
        try:
            greeting = self._read()
            while "event" in greeting and len(self.events) < 16:
                self.events.append(greeting)
                greeting = self._read()
            if "QMP" not in greeting:
                raise LabError("not a QMP greeting: %r" % greeting)
            self.command("qmp_capabilities")
        except BaseException:
            self.close()    # the caller gets no object to close
            raise

    def _read(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise LabError("QMP connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def command(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = self._read()
            if "event" in r:
                self.events.append(r)
                continue
            if "error" in r:
                raise QMPError("%s: %s" % (name, r["error"].get("desc", r["error"])))
            return r.get("return")

    def poll_events(self):
        """Collect events that arrived without a command."""
        self.sock.setblocking(False)
        try:
            while True:
                try:
                    chunk = self.sock.recv(65536)
                except BlockingIOError:
                    break
                if not chunk:
                    break
                self.buf += chunk
        finally:
            self.sock.setblocking(True)
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            r = json.loads(line)
            if "event" in r:
                self.events.append(r)
        return self.events

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.close()


# ---------------------------------------------------------------------------
# a guest

_libc = ctypes.CDLL(None, use_errno=True)
_guests = weakref.WeakSet()     # for _sigterm()


def _child_setup():
    # QEMU dies with the lab, whatever kills the lab.
    _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def crashed_before_modules(console):
    """True when @console shows a kernel crash (Oops, BUG, panic) whose
    report lists the loaded modules and none of them is ours, the stock
    balloon or a lab test module: a crash memcoop cannot have caused."""
    if not re.search(r"Oops|BUG:|Kernel panic", console):
        return False
    lists = re.findall(r"Modules linked in:(.*)", console)
    return bool(lists) and not any(
        re.search(r"memcoop|mctest|virtio_balloon", m) for m in lists)


class Guest:
    """One QEMU guest.  Use as a context manager."""

    def __init__(self, mem=512, smp=1, driver="memcoop", modparams=None,
                 balloon_opts=None, timeout=300, kvm=False, append="",
                 builddir=None, qmp_extra=False, name="guest", balloon=True, module=None,
                 kernel=None, qemu=None, host_usr=False):
        self.host_usr = host_usr    # the host's /usr read-only at /usr (9p)
        if driver not in ("memcoop", "stock", "none"):
            raise LabError("driver must be memcoop, stock or none")
        if module is not None and driver != "memcoop":
            raise LabError("a module to load (%s) needs driver memcoop" % module)
        self.lab = Lab(builddir, module=module, kernel=kernel)
        # QEMU: the host's, or --qemu 10 (bookworm-backports, in the cache)
        self.qemu_bin, self.qemu_fw = fetch_qemu(qemu or os.environ.get("MCLAB_QEMU", ""))
        self.mem, self.smp, self.driver = int(mem), int(smp), driver
        self.modparams = dict(modparams or {})
        self.balloon_opts = dict(balloon_opts or {})
        self.timeout, self.kvm, self.append = timeout, kvm, append
        self.qmp_extra, self.name, self.balloon = qmp_extra, name, balloon
        self.proc = None
        self.qmpc = None
        self.tmp = tempfile.mkdtemp(prefix=TMP_PREFIX + "mclab-")
        _guests.add(self)
        self.console_path = os.path.join(self.tmp, "console.log")
        self.out_path = os.path.join(self.tmp, "out.log")
        self.qmp_path = os.path.join(self.tmp, "qmp.sock")
        self.qmp_path2 = os.path.join(self.tmp, "qmp2.sock") if qmp_extra else None
        self.ctl_path = os.path.join(self.tmp, "ctl.sock")
        self.ctl = None
        self.started = None
        self.boot_seconds = None
        self.exit_code = None
        self._checked = False
        self.scale = 1         # start(): longer waits on the debug kernel

    # -- lifecycle -----------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def start(self, *cmd):
        """Boot the guest and start @cmd in it; return once it runs.

        A guest kernel that dies while booting with no module of ours (or
        the stock balloon) loaded is booted once more: seen twice on 6.12
        under TCG with 2 vCPUs (an int3 Oops in sched_clock_cpu, a fault in
        pcpu_get_vm_areas), before the init had loaded anything; nothing
        memcoop does can cause it, and a second crash fails the run."""
        try:
            return self._start(*cmd)
        except LabError:
            if self.proc is None or not crashed_before_modules(self.console):
                raise
            tail = self.console_tail()
            self._stop_qemu()
        msg = ("the guest kernel crashed while booting, before any module was "
               "loaded (not memcoop's doing); booting once more. Its console:\n" + tail)
        _log(msg)
        sys.stderr.write("mclab: %s\n" % msg)
        return self._start(*cmd)

    def _stop_qemu(self):
        if self.qmpc:
            self.qmpc.close()
            self.qmpc = None
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.qemu_log.close()
        self.proc = None

    def _start(self, *cmd):
        if not cmd:
            raise LabError("no command to run in the guest")
        vmlinuz, _ = self.lab.kernel()
        self.scale = debugkernel.timeout_scale(self.lab.kernel_version())
        initrd = self.lab.initrd(os.path.join(self.tmp, "initrd.cpio"), list(cmd),
                                 self.driver, self.modparams, host_usr=self.host_usr)
        for p in (self.console_path, self.out_path):
            open(p, "wb").close()
        argv = [self.qemu_bin] + [a for d in self.qemu_fw for a in ("-L", d)] + [
                "-name", self.name,
                "-machine", "pc", "-accel", "kvm" if self.kvm else "tcg",
                "-m", str(self.mem), "-smp", str(self.smp),
                "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                "-kernel", vmlinuz, "-initrd", initrd,
                "-append", " ".join(x for x in (KERNEL_ARGS, debugkernel.kernel_args(
                    self.lab.kernel_version()), self.append) if x),
                "-chardev", "file,id=con,path=" + self.console_path,
                "-serial", "chardev:con",
                "-chardev", "file,id=out,path=" + self.out_path,
                "-serial", "chardev:out",
                "-chardev", "socket,id=ctl,path=%s,server=on,wait=off" % self.ctl_path,
                "-serial", "chardev:ctl",
                "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path]
        if self.qmp_path2:
            argv += ["-chardev", "socket,id=qmp2,path=%s,server=on,wait=off" % self.qmp_path2,
                     "-mon", "chardev=qmp2,mode=control"]
        for tag, path in (HOST_SHARES.items() if self.host_usr else ()):
            if os.path.isdir(path):
                argv += ["-fsdev", "local,id=%s,path=%s,security_model=none,readonly=on" % (
                    tag, path), "-device", "virtio-9p-pci,fsdev=%s,mount_tag=%s" % (tag, tag)]
        if self.balloon:
            if "iothread" in self.balloon_opts:     # free-page-hint wants one
                argv += ["-object", "iothread,id=%s" % self.balloon_opts["iothread"]]
            dev = "virtio-balloon-pci,id=balloon0"
            for k, v in self.balloon_opts.items():
                dev += ",%s=%s" % (k, v)
            argv += ["-device", dev]
        _log(" ".join(shlex.quote(a) for a in argv))
        self.started = time.monotonic()
        self.qemu_log = open(os.path.join(self.tmp, "qemu.log"), "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.qemu_log,
                                     stderr=subprocess.STDOUT, preexec_fn=_child_setup)
        self.qemu_pid = self.proc.pid
        try:
            self.qmpc = QMP(self.qmp_path, timeout=30)
        except LabError as e:
            raise LabError("%s; qemu said: %s" % (e, self._qemu_log()))
        m = self._wait_re(r"MCLAB-(READY|SETUP-FAILED)(.*)\n", self.timeout, what="boot")
        if m.group(1) != "READY":
            raise LabError("guest setup failed:%s\n%s" % (m.group(2), self.console_tail()))
        self.boot_seconds = time.monotonic() - self.started
        return self

    def close(self):
        if self.qmpc:
            self.qmpc.close()
            self.qmpc = None
        if self.ctl:
            with contextlib.suppress(OSError):
                self.ctl.close()
            self.ctl = None
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.qemu_log.close()
        self._remove_tmp()

    def _remove_tmp(self, in_handler=False):
        if self.tmp:
            if not os.environ.get("MCLAB_KEEP"):
                shutil.rmtree(self.tmp, ignore_errors=True)
            elif in_handler:    # sys.stderr.write() is not reentrant
                os.write(2, b"mclab: kept %s (MCLAB_KEEP)\n" % self.tmp.encode())
            else:
                sys.stderr.write("mclab: kept %s (MCLAB_KEEP)\n" % self.tmp)
            self.tmp = None

    # -- output ----------------------------------------------------------
    def _read(self, path):
        try:
            with open(path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except (FileNotFoundError, TypeError):
            return ""

    @property
    def console(self):
        return self._read(self.console_path)

    @property
    def raw_output(self):
        return self._read(self.out_path)

    @property
    def output(self):
        """Program output (without the lab's markers)."""
        text = self.raw_output
        text = re.sub(r"^MCLAB-READY.*\n", "", text, count=1)
        text = re.sub(r"\nMCLAB-EXIT \d+\n.*", "", text, flags=re.S)
        return text

    def _qemu_log(self):
        return self._read(os.path.join(self.tmp, "qemu.log")).strip() if self.tmp else ""

    def console_tail(self, lines=40):
        tail = "\n".join(self.console.splitlines()[-lines:])
        return "--- console tail (%s) ---\n%s\n--- end ---" % (self.name, tail)

    def _wait_re(self, pattern, timeout, what="output", source=None):
        rx = re.compile(pattern)
        timeout *= self.scale
        deadline = time.monotonic() + timeout
        while True:
            text = source() if source else self.raw_output
            m = rx.search(text)
            if m:
                return m
            if self.proc.poll() is not None:
                text = source() if source else self.raw_output
                m = rx.search(text)
                if m:
                    return m
                raise LabError("QEMU exited (status %s) while waiting for %s %r\n%s\n%s" % (
                    self.proc.returncode, what, pattern, self._qemu_log(), self.console_tail()))
            if time.monotonic() > deadline:
                raise LabError("timeout (%ds) waiting for %s %r: guest hung?\n%s" % (
                    timeout, what, pattern, self.console_tail()))
            time.sleep(0.05)

    def wait_for(self, pattern, timeout=60):
        """Wait until the program's output matches @pattern; the match."""
        return self._wait_re(pattern, timeout, source=lambda: self.output)

    def wait_exit(self, timeout=None, stream=None):
        """Wait for the program to exit; check the console; its status."""
        timeout = (self.timeout if timeout is None else timeout) * self.scale
        rx = re.compile(r"\nMCLAB-EXIT (\d+)\n")
        deadline = time.monotonic() + timeout
        shown = 0
        while True:
            text = self.raw_output
            if stream:
                body = self.output
                if len(body) > shown:
                    stream(body[shown:])
                    shown = len(body)
            m = rx.search(text)
            if m:
                break
            if self.proc.poll() is not None:
                raise LabError("guest died before the program finished (QEMU status %s)\n%s" % (
                    self.proc.returncode, self.console_tail()))
            if time.monotonic() > deadline:
                raise LabError("timeout (%ds): the program did not finish, guest hung?\n%s" % (
                    timeout, self.console_tail()))
            time.sleep(0.05)
        self.exit_code = int(m.group(1))
        # the guest prints its taint and powers off; a missing taint line
        # is reported by check_console() below
        try:
            self._wait_re(r"MCLAB-TAINT \d+", POWEROFF_S, what="taint report",
                          source=lambda: self.console)
        except LabError:
            pass
        try:
            self.proc.wait(POWEROFF_S)
        except subprocess.TimeoutExpired:
            self.check_console()
            raise LabError("the guest did not power off within %d s after the program "
                           "exited %d (shutdown hung?)\n%s" % (
                               POWEROFF_S, self.exit_code, self.console_tail()))
        self.check_console(final=True)
        return self.exit_code

    def check_console(self, final=False):
        """Raise LabError if the console shows a kernel problem."""
        con = self.console
        bad = console_problems(con)
        if final and not re.search(r"MCLAB-TAINT \d+", con):
            bad.append("the guest did not report its taint before powering off")
        if bad:
            raise LabError("kernel problem in guest %s:\n  %s\n%s" % (
                self.name, "\n  ".join(bad[:20]), self.console_tail(80)))

    # -- host actions ----------------------------------------------------
    def qmp(self, cmd, **args):
        return self.qmpc.command(cmd, **args)

    def balloon_actual(self):
        return self.qmp("query-balloon")["actual"]

    def set_target(self, mib):
        self.qmp("balloon", value=int(mib) << 20)

    def wait_actual(self, mib, timeout=60, tolerance_mib=0):
        """Wait until query-balloon's actual is within tolerance of @mib;
        return the seconds it took (raises LabError on timeout)."""
        t0 = time.monotonic()
        timeout *= self.scale
        want = int(mib) << 20
        while True:
            a = self.balloon_actual()
            if abs(a - want) <= (tolerance_mib << 20):
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise LabError("balloon actual %d MiB, target %d MiB, after %ds" % (
                    a >> 20, mib, timeout))
            if self.proc.poll() is not None:
                raise LabError("guest died while ballooning\n" + self.console_tail())
            time.sleep(0.02)

    @property
    def events(self):
        return self.qmpc.poll_events() if self.qmpc else []

    def send(self, line):
        """Send a line to the program (it reads /dev/ttyS2)."""
        try:
            if self.ctl is None:
                self.ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.ctl.connect(self.ctl_path)
            self.ctl.sendall(line.encode() + b"\n")
        except OSError as e:
            # QEMU closed the program's serial line: the guest powered off
            # (the program exited, or was killed) or died
            time.sleep(1)
            raise LabError("cannot send %r to the guest's program (%s): it exited or "
                           "the guest is gone\n%s" % (line, e, self.console_tail())) from e

    def qemu_rss_kib(self):
        for line in open("/proc/%d/status" % self.qemu_pid):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def qemu_cpu_seconds(self):
        fields = open("/proc/%d/stat" % self.qemu_pid).read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _sigterm(signum, frame):
    # meson test sends SIGTERM (timeout, Ctrl-C) and SIGKILL half a second
    # later: too soon for QEMU and memcoopd to shut down in order.  The
    # files go first; the test counts as failed, so it keeps its own.
    for g in list(_guests):
        g._remove_tmp(in_handler=True)
    cleanup_tmp(failed=True, _in_handler=True)
    raise SystemExit(128 + signum)


def install_signal_handlers():
    """Turn SIGTERM/SIGHUP into SystemExit so that Guest.close() runs, and
    remove the lab's temporary files at once (see _sigterm)."""
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _sigterm)


def skip(reason):
    """The exit status of a test that cannot run here: 77 (skipped), but
    1 (failed) in CI (CI=true), where every prerequisite is installed and
    a skip would hide a test that never ran."""
    if os.environ.get("CI") == "true":
        print("FAIL: cannot run (%s), and in CI (CI=true) that is a failure" % reason,
              flush=True)
        return 1
    print("SKIP: %s" % reason, flush=True)
    return 77
