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
import time
import weakref

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
]
# Taint flags a run may carry: O (out-of-tree module), E (unsigned module).
ALLOWED_TAINT = (1 << 12) | (1 << 13)

VIRTIO_MODULES = ["virtio_ring", "virtio", "virtio_pci_modern_dev",
                  "virtio_pci_legacy_dev", "virtio_pci"]
EXTRA_MODULES = ["virtio_balloon"]

KERNEL_ARGS = ("console=ttyS0,115200 loglevel=5 panic=-1 oops=panic "
               "slub_debug=FZPU page_poison=1 mitigations=off "
               "8250.nr_uarts=4 no_timer_check rdinit=/init")

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
echo "MCLAB-READY $(cut -d' ' -f1 /proc/uptime)" > $out
cd /tmp
/bin/sh /mclab/cmd > $out 2>&1 < /dev/null
rc=$?
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


class Lab:
    """Paths and cached artefacts of one build directory; @module: a
    memcoop.ko to pack instead of the build's (one built by DKMS, say)."""

    def __init__(self, builddir=None, module=None):
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
        self.cache = os.environ.get("MCLAB_CACHE") or os.path.join(
            os.path.expanduser("~"), ".cache", "memcoop")

    # -- the guest kernel -------------------------------------------------
    def kernel_version(self):
        v = os.environ.get("MCLAB_KERNEL_VERSION")
        if v:
            return v
        if not os.path.exists(self.ko):
            raise LabError("%s not built (ninja -C %s)" % (self.ko, self.builddir))
        r = subprocess.run(["modinfo", "-F", "vermagic", self.ko],
                           capture_output=True, text=True)
        if r.returncode != 0 or not r.stdout.strip():
            raise LabError("modinfo %s failed: %s" % (self.ko, r.stderr.strip()))
        return r.stdout.split()[0]

    def kernel(self):
        """Fetch (once) the Debian kernel matching memcoop.ko; return
        (vmlinuz path, {module name: path})."""
        ver = self.kernel_version()
        kdir = os.path.join(self.cache, "kernel", ver)
        os.makedirs(kdir, exist_ok=True)
        done = os.path.join(kdir, ".complete")
        with _flock(os.path.join(kdir, ".lock")):
            if not os.path.exists(done):
                self._fetch_kernel(ver, kdir)
                open(done, "w").close()
        mods = {}
        for m in VIRTIO_MODULES + EXTRA_MODULES:
            p = os.path.join(kdir, "modules", m + ".ko")
            if not os.path.exists(p):
                raise LabError("module %s missing from the %s kernel cache" % (m, ver))
            mods[m] = p
        return os.path.join(kdir, "vmlinuz"), mods

    def _fetch_kernel(self, ver, kdir):
        pkg = "linux-image-" + ver
        sys.stderr.write("mclab: fetching %s (apt-get download)\n" % pkg)
        tmp = tempfile.mkdtemp(prefix="mclab-kernel-", dir=kdir)
        try:
            r = subprocess.run(["apt-get", "download", pkg], cwd=tmp,
                               capture_output=True, text=True)
            debs = glob.glob(os.path.join(tmp, "*.deb"))
            if r.returncode != 0 or not debs:
                raise LabError("apt-get download %s failed: %s" % (pkg, r.stderr.strip()))
            x = os.path.join(tmp, "x")
            subprocess.run(["dpkg-deb", "-x", debs[0], x], check=True)
            vmlinuz = glob.glob(os.path.join(x, "boot", "vmlinuz-*"))
            if not vmlinuz:
                raise LabError("%s has no vmlinuz" % pkg)
            shutil.copy(vmlinuz[0], os.path.join(kdir, "vmlinuz"))
            mdir = os.path.join(kdir, "modules")
            os.makedirs(mdir, exist_ok=True)
            for m in VIRTIO_MODULES + EXTRA_MODULES:
                found = [p for p in glob.glob(os.path.join(x, "lib", "modules", "*", "kernel",
                                                           "**", m + ".ko*"), recursive=True)]
                if not found:
                    raise LabError("%s has no module %s" % (pkg, m))
                data = open(found[0], "rb").read()
                if found[0].endswith(".xz"):
                    data = lzma.decompress(data)
                with open(os.path.join(mdir, m + ".ko"), "wb") as f:
                    f.write(data)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

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
        # a given module gets its own cache, so that it never replaces the build's base
        kind = "module" if with_module and self.module_given else "base"
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
            for old in glob.glob(os.path.join(self.workdir, kind + "-*.cpio")):
                if old != path:
                    with contextlib.suppress(OSError):
                        os.unlink(old)
        return path

    def initrd(self, dest, cmd, driver="memcoop", modparams=None, base_modules=None):
        """Write base + per-run cpio to @dest."""
        base = self.base_initramfs(with_module=(driver == "memcoop"))
        params = " ".join("%s=%s" % (k, v) for k, v in (modparams or {}).items())
        for k in (modparams or {}):
            if not re.match(r"^[A-Za-z0-9_]+$", k):
                raise LabError("bad module parameter name %r" % k)
        conf = "MCLAB_DRIVER=%s\nMCLAB_PARAMS=%s\nMCLAB_BASE_MODULES=%s\n" % (
            shlex.quote(driver), shlex.quote(params),
            shlex.quote(" ".join(base_modules if base_modules is not None else VIRTIO_MODULES)))
        c = Cpio()
        c.file("mclab/run.conf", conf.encode(), 0o644)
        c.file("mclab/cmd", (shlex.join(cmd) + "\n").encode(), 0o644)
        with open(dest, "wb") as f:
            with open(base, "rb") as b:
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
    m = re.search(r"MCLAB-TAINT (\d+)", console)
    if m and int(m.group(1)) & ~ALLOWED_TAINT:
        bad.append("kernel tainted: %s (allowed: out-of-tree/unsigned module only)" % m.group(1))
    return bad


# ---------------------------------------------------------------------------
# QMP

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
        greeting = self._read()
        if "QMP" not in greeting:
            raise LabError("not a QMP greeting: %r" % greeting)
        self.command("qmp_capabilities")

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


class Guest:
    """One QEMU guest.  Use as a context manager."""

    def __init__(self, mem=512, smp=1, driver="memcoop", modparams=None,
                 balloon_opts=None, timeout=300, kvm=False, append="",
                 builddir=None, qmp_extra=False, name="guest", balloon=True, module=None):
        if driver not in ("memcoop", "stock", "none"):
            raise LabError("driver must be memcoop, stock or none")
        if module is not None and driver != "memcoop":
            raise LabError("a module to load (%s) needs driver memcoop" % module)
        self.lab = Lab(builddir, module=module)
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

    # -- lifecycle -----------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def start(self, *cmd):
        """Boot the guest and start @cmd in it; return once it runs."""
        if not cmd:
            raise LabError("no command to run in the guest")
        vmlinuz, _ = self.lab.kernel()
        initrd = self.lab.initrd(os.path.join(self.tmp, "initrd.cpio"), list(cmd),
                                 self.driver, self.modparams)
        for p in (self.console_path, self.out_path):
            open(p, "wb").close()
        argv = [shutil.which("qemu-system-x86_64") or "qemu-system-x86_64",
                "-name", self.name,
                "-machine", "pc", "-accel", "kvm" if self.kvm else "tcg",
                "-m", str(self.mem), "-smp", str(self.smp),
                "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                "-kernel", vmlinuz, "-initrd", initrd,
                "-append", (KERNEL_ARGS + " " + self.append).strip(),
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
        if self.balloon:
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
        timeout = self.timeout if timeout is None else timeout
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
        # the guest prints its taint and powers off
        try:
            self._wait_re(r"MCLAB-TAINT \d+", 30, what="taint report", source=lambda: self.console)
        except LabError:
            pass
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            pass
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
        if self.ctl is None:
            self.ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.ctl.connect(self.ctl_path)
        self.ctl.sendall(line.encode() + b"\n")

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
