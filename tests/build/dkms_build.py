#!/usr/bin/env python3
"""The DKMS packaging, with the real dkms, then the module it built in a guest.

  1. stage the source tree as guest-driver/dkms/README says a package does
     (<tmp>/src/memcoop-VERSION: dkms.conf, guest-driver/kernel/,
     proto/memcoop.h);
  2. dkms add, build and install for the kernel of KERNEL_DIR, with every
     dkms tree in <tmp> (--sourcetree, --dkmstree, --installtree,
     --no-depmod, a throw-away signing key): the host's /usr/src,
     /var/lib/dkms and /lib/modules are not touched (checked);
  3. the installed memcoop.ko: vermagic of that kernel, the virtio-balloon
     alias, a make.log without a warning;
  4. boot it in the lab (mclab.Guest(module=...)): it is the module that
     runs (build id), it drives the balloon device (driver memcoop-balloon),
     and the balloon follows a QMP `balloon` down, debugfs agreeing.

With PREFIX (a trixie kernel: the lab's Debian 13 chroot), dkms runs
under it and the host paths checked are the chroot's.

Exit 0 pass, 1 fail.  No dkms is a failure, not a skip: .ci/deps.sh
installs it, so a machine without it is not set up (tests/run, "Skips").
Usage: dkms_build.py SOURCE_ROOT KERNEL_DIR PROJECT_VERSION [PREFIX...]
"""
import os
import re
import shutil
import subprocess
import sys

import mclab

MEM = 512                       # MiB
TARGET = 384                    # MiB, the balloon target after boot
PAGES_PER_MIB = 256
BALLOON_ALIAS = "virtio:d00000005v*"
DRIVER = "memcoop-balloon"

# In the guest: what drives each virtio device, the build id of the loaded
# memcoop, then (after the host's "go") the driver's counters.
GUEST_SCRIPT = r"""
for d in /sys/bus/virtio/devices/*; do
	drv=none
	[ -e $d/driver ] && drv=$(basename $(readlink $d/driver))
	echo "DEVICE $(basename $d) $(cat $d/device) $drv"
done
echo "BUILDID $(od -An -v -tx1 /sys/module/memcoop/notes/.note.gnu.build-id | tr -d ' \n')"
echo READY
read go < /dev/ttyS2
echo "COUNTERS"
cat /sys/kernel/debug/memcoop/balloon
"""


class Failed(Exception):
    """A check failed."""


# The command prefix dkms runs under, and where its "/" is on the host.
PREFIX = []
ROOT = ""


def run(argv, what, env=None):
    """Run @argv; its output; Failed (with the output) on a non-zero exit."""
    if argv[0] == "dkms":
        argv = PREFIX + argv
    print("+ " + " ".join(argv), flush=True)
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       env=env, timeout=600)
    if r.returncode != 0:
        raise Failed("%s failed (exit %d):\n%s" % (what, r.returncode, r.stdout.rstrip()))
    return r.stdout


def conf_value(conf, name):
    m = re.search(r'^%s="?([^"\n]*)"?\s*$' % re.escape(name), conf, re.M)
    return m.group(1) if m else None


def read(path):
    with open(path) as f:
        return f.read()


def stage(src, tree, version):
    """The source tree of a memcoop-VERSION package, as the README has it."""
    dest = os.path.join(tree, "memcoop-" + version)
    # what a package holds: sources, not the objects of an in-tree `make`
    artefacts = shutil.ignore_patterns("*.o", "*.ko", "*.mod", "*.mod.c", ".*.cmd",
                                       "Module.symvers", "modules.order", ".tmp_versions")
    shutil.copytree(os.path.join(src, "guest-driver", "kernel"),
                    os.path.join(dest, "guest-driver", "kernel"), ignore=artefacts)
    os.makedirs(os.path.join(dest, "proto"))
    shutil.copy(os.path.join(src, "proto", "memcoop.h"), os.path.join(dest, "proto"))
    shutil.copy(os.path.join(src, "guest-driver", "dkms", "dkms.conf"), dest)
    return dest


def host_state(kver, version):
    """The host paths a careless dkms run would create."""
    paths = ["/var/lib/dkms/memcoop", "/usr/src/memcoop-" + version,
             "/lib/modules/%s/updates/dkms/memcoop.ko" % kver]
    return {p: os.path.lexists(ROOT + p) for p in paths}


def kernel_release(kdir):
    """What `uname -r` says under that kernel (Debian's headers have the
    upstream version in include/config/kernel.release, not this)."""
    path = ROOT + os.path.join(kdir, "include", "generated", "utsrelease.h")
    m = re.search(r'UTS_RELEASE "([^"]+)"', read(path))
    if not m:
        raise Failed("no UTS_RELEASE in %s" % path)
    return m.group(1)


def build_id(ko):
    out = run(["readelf", "-n", ko], "readelf -n")
    m = re.search(r"Build ID: ([0-9a-f]+)", out)
    if not m:
        raise Failed("%s has no build id" % ko)
    return m.group(1)


def dkms_build(src, kdir, version, tmp):
    """Stage, dkms add/build/install into @tmp; the installed memcoop.ko."""
    kver = kernel_release(kdir)
    conf = read(os.path.join(src, "guest-driver", "dkms", "dkms.conf"))
    pkg_version = conf_value(conf, "PACKAGE_VERSION")
    if conf_value(conf, "PACKAGE_NAME") != "memcoop" or pkg_version != version:
        raise Failed("dkms.conf: PACKAGE_NAME %r, PACKAGE_VERSION %r; want memcoop, %s "
                     "(the project's version)" % (conf_value(conf, "PACKAGE_NAME"),
                                                  pkg_version, version))
    before = host_state(kver, version)

    trees = {t: os.path.join(tmp, t) for t in ("src", "dkms", "modules")}
    for d in trees.values():
        os.makedirs(d)
    os.makedirs(os.path.join(trees["modules"], kver))     # dkms install wants it
    stage(src, trees["src"], version)
    # dkms reads its signing key's location from the environment as well as
    # from /etc/dkms/framework.conf; the default would be made in /var/lib/dkms
    env = dict(os.environ, TMPDIR=tmp, mok_signing_key=os.path.join(tmp, "mok.key"),
               mok_certificate=os.path.join(tmp, "mok.pub"))
    where = ["--sourcetree", trees["src"], "--dkmstree", trees["dkms"],
             "--installtree", trees["modules"]]
    modver = ["memcoop/" + version]                      # as the README has it
    kern = ["-k", kver, "--kernelsourcedir", kdir]
    run(["dkms", "add"] + modver + where, "dkms add", env)
    try:
        run(["dkms", "build"] + modver + kern + where, "dkms build", env)
    except Failed as e:
        log = os.path.join(trees["dkms"], "memcoop", version, "build", "make.log")
        if os.path.exists(log):
            raise Failed("%s\n--- %s ---\n%s" % (e, log, read(log).rstrip()))
        raise
    run(["dkms", "install", "--no-depmod"] + modver + kern + where, "dkms install", env)
    status = run(["dkms", "status"] + modver + where, "dkms status", env)
    print(status.rstrip())
    if not re.search(r"^memcoop/%s, %s, [^:]+: installed" % (re.escape(version), re.escape(kver)),
                     status, re.M):
        raise Failed("dkms status does not say installed for %s:\n%s" % (kver, status))

    ko = os.path.join(trees["modules"], kver, "updates", "dkms", "memcoop.ko")
    if not os.path.isfile(ko):
        found = [os.path.join(d, f) for d, _, fs in os.walk(tmp) for f in fs
                 if f.startswith("memcoop.ko")]
        raise Failed("dkms install left no %s (memcoop.ko* found: %s)" % (ko, found or "none"))
    info = run(["modinfo", ko], "modinfo")
    vermagic = re.search(r"^vermagic:\s+(\S+)", info, re.M)
    if not vermagic or vermagic.group(1) != kver:
        raise Failed("%s: vermagic %r, want %s" % (ko, vermagic and vermagic.group(1), kver))
    aliases = re.findall(r"^alias:\s+(\S+)", info, re.M)
    if BALLOON_ALIAS not in aliases:
        raise Failed("no alias %s (aliases: %s)" % (BALLOON_ALIAS, aliases))
    logs = [os.path.join(d, f) for d, _, fs in os.walk(trees["dkms"]) for f in fs
            if f == "make.log"]
    if not logs:
        raise Failed("dkms kept no make.log")
    warnings = [line for line in read(logs[0]).splitlines(True)
                if re.search(r"warning", line, re.I)]
    if warnings:
        raise Failed("the DKMS build warns:\n" + "".join(warnings))
    signer = re.search(r"^signer:\s+(.*)$", info, re.M)
    print("ok: %s: vermagic %s, alias %s, signer %s, no warning in make.log" % (
        ko, kver, BALLOON_ALIAS, signer.group(1) if signer else "none (unsigned)"), flush=True)

    after = host_state(kver, version)
    if after != before:
        raise Failed("dkms touched the host: %s" % {p: (before[p], after[p]) for p in before
                                                     if before[p] != after[p]})
    print("ok: /usr/src, /var/lib/dkms, /lib/modules/%s untouched" % kver, flush=True)
    return ko


def boot(ko):
    """Boot @ko in the lab; the balloon follows a smaller target."""
    want_id = build_id(ko)
    with mclab.Guest(mem=MEM, module=ko, timeout=300, name="dkms") as g:
        g.start("sh", "-c", GUEST_SCRIPT)
        g.wait_for(r"(?m)^READY\n", timeout=120)
        out = g.output
        devices = re.findall(r"(?m)^DEVICE (\S+) (\S+) (\S+)$", out)
        balloons = [d for d in devices if d[1] == "0x0005"]
        if len(balloons) != 1 or balloons[0][2] != DRIVER:
            raise Failed("the balloon device is not driven by %s: %s\n%s" % (
                DRIVER, devices, g.console_tail()))
        print("ok: %s (virtio id 5) driven by %s" % (balloons[0][0], DRIVER), flush=True)
        m = re.search(r"(?m)^BUILDID ([0-9a-f]*)$", out)
        if not m or not m.group(1).endswith(want_id):
            raise Failed("the guest's memcoop is not the DKMS one: note %r, build id %s" % (
                m and m.group(1), want_id))
        print("ok: the loaded memcoop is the DKMS build (build id %s)" % want_id, flush=True)

        if g.balloon_actual() != MEM << 20:
            raise Failed("balloon actual %d MiB at boot, want %d" % (
                g.balloon_actual() >> 20, MEM))
        g.set_target(TARGET)
        secs = g.wait_actual(TARGET, timeout=120)
        print("ok: QMP balloon %d MiB -> actual %d MiB in %.2f s" % (TARGET, TARGET, secs),
              flush=True)
        g.send("go")
        rc = g.wait_exit(timeout=60)
        if rc != 0:
            raise Failed("guest script exited %d:\n%s" % (rc, g.output))
        counters = dict(re.findall(r"(?m)^(\w+) (\d+)$", g.output.split("COUNTERS", 1)[-1]))
        size = int(counters.get("size_pages", -1))
        if size != (MEM - TARGET) * PAGES_PER_MIB:
            raise Failed("debugfs size_pages %d, want %d:\n%s" % (
                size, (MEM - TARGET) * PAGES_PER_MIB, g.output))
        print("ok: debugfs size_pages %d (%d MiB); console clean" % (size, MEM - TARGET),
              flush=True)


def main():
    global PREFIX, ROOT
    if len(sys.argv) < 4:
        print(__doc__)
        return 2
    src, kdir, version = sys.argv[1:4]
    PREFIX = sys.argv[4:]
    if PREFIX:
        ROOT = mclab.chroot_root()
    if shutil.which("dkms") is None:
        print("FAIL: dkms is not installed (sh .ci/deps.sh installs it)")
        return 1
    mclab.install_signal_handlers()
    tmp = mclab.mkdtemp("dkms-build")
    try:
        ko = dkms_build(os.path.abspath(src), kdir if PREFIX else os.path.abspath(kdir),
                        version, tmp)
        boot(ko)
    except (Failed, mclab.LabError, mclab.QMPError, OSError,
            subprocess.TimeoutExpired) as e:
        print("FAIL: %s" % e, flush=True)
        return 1
    finally:
        mclab.cleanup_tmp()
    print("PASS: DKMS builds and installs memcoop.ko, and it drives the balloon")
    return 0


if __name__ == "__main__":
    sys.exit(main())
