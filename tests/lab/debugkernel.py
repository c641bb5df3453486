"""The lab's debug guest kernel: Debian's linux-source-6.12 built once with
KASAN, KFENCE, lockdep, UBSAN, kmemleak, the lockup and hung-task detectors
and fault injection, cached under ~/.cache/memcoop/debug-kernel/.

The configuration is `make tinyconfig` plus tests/lab/debug-kernel.config.
tinyconfig rather than defconfig: defconfig builds some 3000 objects of
drivers and file systems a lab guest never touches (about 40 minutes on
2 cores with KASAN), tinyconfig plus what the guests need about 1000; every
option the fragment names is checked to have taken effect.

The tree's release is VERSION-memcoop-debug, so a memcoop.ko built against
it (meson setup build-debug -Dkernel_dir=$(python3 tests/lab/debugkernel.py
ensure)) carries that vermagic, and the lab boots this kernel for it.

    python3 tests/lab/debugkernel.py ensure   # build if missing; print the tree
    python3 tests/lab/debugkernel.py path     # print the tree, fail if not built
"""

import fcntl
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

SOURCE_PACKAGE = "linux-source-6.12"
LOCALVERSION = "-memcoop-debug"
HERE = os.path.dirname(os.path.abspath(__file__))
FRAGMENT = os.path.join(HERE, "debug-kernel.config")


class DebugKernelError(Exception):
    pass


def cache_root():
    base = os.environ.get("MCLAB_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "memcoop")
    return os.path.join(base, "debug-kernel")


def is_debug_release(release):
    return release.endswith(LOCALVERSION)


def kernel_args(release):
    """Extra command line for @release (empty unless the debug kernel).
    KASAN under TCG on a loaded host runs some 20 times slower than a
    native guest, so the lockup and stall detectors get their longest
    thresholds (soft lockup after 120 s, RCU stall after 120 s): they
    still catch a loop that never yields, not a slow emulator.

    No pci=noacpi any more: every lab guest boots with acpi=noirq (see
    mclab.KERNEL_ARGS), which keeps ACPI's PCI hotplug.  This kernel has
    no PCI_MSI, so virtio-pci runs on INTx, and ACPI's routing evaluates
    the pc machine's \\_SB.PCI0._PRT, a 128-round AML While loop that
    ACPICA aborted after 30 s (AE_AML_LOOP_TIMEOUT) under KASAN, kmemleak
    and slub_debug on a loaded TCG host: "PCI INT A: no GSI", and the
    balloon's IRQ 10 never fired.  pci=noacpi fixed that but also turned
    off acpiphp (balloon-unplug failed here); acpi=noirq skips only the
    routing.  PCI_MSI does not help: QEMU's virtio-balloon-pci has no
    MSI-X vectors (tried, with a cold rebuild: the same timeout)."""
    if not is_debug_release(release):
        return ""
    return "watchdog_thresh=60 rcupdate.rcu_cpu_stall_timeout=120"


# How much longer the lab waits for a debug-kernel guest (boot, program,
# balloon, output): KASAN's checks of every access and lockdep's of every
# lock made its guests 2-4 times slower than Debian's kernel under TCG on
# this loaded 2-core host.  meson's own limits get the same factor
# (tests/run: meson test -C build-debug --timeout-multiplier).
TIMEOUT_SCALE = 4


def timeout_scale(release):
    """The factor for the lab's timeouts on a guest running @release."""
    return TIMEOUT_SCALE if is_debug_release(release) else 1


def _fragment():
    with open(FRAGMENT) as f:
        text = f.read()
    opts = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("CONFIG_"):
            k, v = line.split("=", 1)
            opts[k] = v
        elif line.startswith("# CONFIG_") and line.endswith(" is not set"):
            opts[line[2:].split()[0]] = "n"
    return text, opts


def _source_version():
    r = subprocess.run(["apt-cache", "policy", SOURCE_PACKAGE],
                       capture_output=True, text=True)
    for line in r.stdout.splitlines():
        line = line.strip()
        if line.startswith("Candidate:"):
            v = line.split()[1]
            if v != "(none)":
                return v
    raise DebugKernelError("%s is not in this machine's apt sources" % SOURCE_PACKAGE)


def _key():
    text, _ = _fragment()
    h = hashlib.sha256(text.encode()).hexdigest()[:12]
    return "%s-%s" % (_source_version().replace("~", "_"), h)


def tree_path():
    """The cached tree for the current source version and fragment."""
    return os.path.join(cache_root(), _key(), "linux")


def _verify(tree, opts):
    got = {}
    with open(os.path.join(tree, ".config")) as f:
        for line in f:
            line = line.strip()
            if line.startswith("CONFIG_"):
                k, v = line.split("=", 1)
                got[k] = v
    bad = ["%s: want %s, got %s" % (k, v, got.get(k, "n"))
           for k, v in opts.items() if got.get(k, "n") != v]
    if bad:
        raise DebugKernelError("the fragment did not apply (a dependency is "
                               "missing):\n  " + "\n  ".join(bad))


def _run(argv, cwd, log):
    log.write("$ %s\n" % " ".join(argv))
    log.flush()
    r = subprocess.run(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise DebugKernelError("%s failed (exit %d); see %s"
                               % (" ".join(argv), r.returncode, log.name))


def _build(top):
    _, opts = _fragment()
    work = tempfile.mkdtemp(prefix="build-", dir=top)
    logpath = os.path.join(top, "build.log")
    with open(logpath, "w") as log:
        sys.stderr.write("debugkernel: building the debug kernel from %s "
                         "(log %s)\n" % (SOURCE_PACKAGE, logpath))
        _run(["apt-get", "download", SOURCE_PACKAGE], work, log)
        deb = glob.glob(os.path.join(work, "*.deb"))
        if not deb:
            raise DebugKernelError("apt-get download %s gave no .deb" % SOURCE_PACKAGE)
        _run(["dpkg-deb", "-x", deb[0], "x"], work, log)
        tarball = glob.glob(os.path.join(work, "x", "usr", "src", "linux-source-*.tar.*"))
        if not tarball:
            raise DebugKernelError("%s holds no source tarball" % SOURCE_PACKAGE)
        _run(["tar", "xf", tarball[0]], work, log)
        src = [d for d in glob.glob(os.path.join(work, "linux-source-*"))
               if os.path.isdir(d)][0]
        # built where it stays: Kbuild keeps absolute paths in its files
        tree = os.path.join(top, "linux")
        os.rename(src, tree)
        src = tree
        shutil.rmtree(work)
        _run(["make", "-s", "tinyconfig"], src, log)
        _run(["scripts/kconfig/merge_config.sh", "-m", ".config", FRAGMENT], src, log)
        with open(os.path.join(src, ".config"), "a") as f:
            f.write('CONFIG_LOCALVERSION="%s"\n# CONFIG_LOCALVERSION_AUTO is not set\n'
                    % LOCALVERSION)
        _run(["make", "-s", "olddefconfig"], src, log)
        _verify(src, opts)
        jobs = str(os.cpu_count() or 2)
        _run(["nice", "-n", "10", "make", "-j" + jobs, "bzImage", "modules"], src, log)
        rel = subprocess.run(["make", "-s", "kernelrelease"], cwd=src,
                             capture_output=True, text=True).stdout.strip()
        if not is_debug_release(rel):
            raise DebugKernelError("kernel release %r lacks %s" % (rel, LOCALVERSION))


def ensure():
    """Build the debug kernel if it is not cached; return its tree."""
    tree = tree_path()
    top = os.path.dirname(tree)
    os.makedirs(top, exist_ok=True)
    fd = os.open(os.path.join(top, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if not os.path.exists(os.path.join(top, ".complete")):
            for old in glob.glob(os.path.join(top, "build-*")) + [tree]:
                shutil.rmtree(old, ignore_errors=True)
            _build(top)
            open(os.path.join(top, ".complete"), "w").close()
    finally:
        os.close(fd)
    return tree


def find_tree(release):
    """The built tree whose release is @release, or None: the current
    fragment's first (every fragment's tree has the same release, and a
    module built against one must boot that one), then older ones, the
    last built first (while a new fragment's tree builds, the previous
    fragment's, which build-debug was set up against, not an older one)."""
    def built(top):
        try:
            return os.stat(os.path.join(top, ".complete")).st_mtime
        except OSError:
            return 0
    tops = sorted(glob.glob(os.path.join(cache_root(), "*")), key=built, reverse=True)
    try:
        current = os.path.dirname(tree_path())
    except DebugKernelError:
        current = None
    if current in tops:
        tops.remove(current)
        tops.insert(0, current)
    for top in tops:
        tree = os.path.join(top, "linux")
        if not os.path.exists(os.path.join(top, ".complete")):
            continue
        try:
            with open(os.path.join(tree, "include", "config", "kernel.release")) as f:
                if f.read().strip() == release:
                    return tree
        except OSError:
            continue
    return None


def has_kasan(release):
    """Whether kernel @release is a debug kernel built with KASAN, whose
    shadow takes 1/8 of RAM off MemTotal (tests sized to Debian's
    MemTotal adjust to it)."""
    return config_option(release, "CONFIG_KASAN") == "y"


def config_option(release, option):
    """The value of @option ("CONFIG_...") in the .config of the debug
    kernel @release, "n" when it is not set; None when @release is not
    a debug kernel (Debian's, whose configuration the lab does not keep)."""
    if not is_debug_release(release):
        return None
    tree = find_tree(release)
    if tree is None:
        raise DebugKernelError("debug kernel %s is not built" % release)
    with open(os.path.join(tree, ".config")) as f:
        for line in f:
            k, sep, v = line.strip().partition("=")
            if sep and k == option:
                return v
    return "n"


# virtio parts the lab loads as modules on Debian's 6.1, built in here
BUILTIN = ["virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev",
           "virtio_pci"]


def boot_dir(release):
    """The debug kernel @release laid out as the lab's kernel cache is
    (vmlinuz, modules/virtio_balloon.ko, modules/builtin.txt); its path."""
    tree = find_tree(release)
    if tree is None:
        raise DebugKernelError("debug kernel %s is not built "
                               "(python3 tests/lab/debugkernel.py ensure)" % release)
    kdir = os.path.join(os.path.dirname(tree), "boot")
    if not os.path.exists(os.path.join(kdir, ".complete")):
        os.makedirs(os.path.join(kdir, "modules"), exist_ok=True)
        shutil.copy(os.path.join(tree, "arch", "x86", "boot", "bzImage"),
                    os.path.join(kdir, "vmlinuz"))
        shutil.copy(os.path.join(tree, "drivers", "virtio", "virtio_balloon.ko"),
                    os.path.join(kdir, "modules", "virtio_balloon.ko"))
        with open(os.path.join(kdir, "modules", "builtin.txt"), "w") as f:
            f.write("".join(m + "\n" for m in BUILTIN))
        open(os.path.join(kdir, ".complete"), "w").close()
    return kdir


def main(argv):
    if len(argv) != 2 or argv[1] not in ("ensure", "path"):
        sys.stderr.write(__doc__)
        return 2
    try:
        if argv[1] == "ensure":
            print(ensure())
        else:
            tree = tree_path()
            if not os.path.exists(os.path.join(os.path.dirname(tree), ".complete")):
                raise DebugKernelError("not built: %s" % tree)
            print(tree)
    except DebugKernelError as e:
        sys.stderr.write("debugkernel: %s\n" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
