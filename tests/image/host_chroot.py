#!/usr/bin/env python3
"""The host side installed into a Debian 12 system, as an operator would.

The Debian 12 image (images.py; an overlay on the cached tree, in a chroot)
serves as the host: dpkg -i memcoopd libmemcoop0 libmemcoop-dev, then

  1. the group memcoop exists (sysusers, run by the postinst) and the
     shipped config gives it the control socket;
  2. `memcoopd --check` accepts the shipped /etc/memcoop/memcoopd.conf
     (after systemd-tmpfiles made its qmp-dir, as at boot);
  3. `systemd-analyze verify` finds nothing wrong with memcoopd.service;
  4. the unit is enabled (multi-user.target.wants) by the postinst;
  5. the man pages the tree has (any *.[358] file for memcoopd, memcoopctl,
     memcoopd.conf, libmemcoop) are installed by the packages;
  6. libmemcoop-dev builds a program: cc with memcoop.pc's Libs against the
     installed headers and library, and it runs (linked to libmemcoop.so.0);
  7. apt-get purge memcoopd removes /etc/memcoop and the unit's links.

Usage: host_chroot.py SOURCE_ROOT.  Exit 0 pass, 1 fail.
"""

import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lab"))
import debs  # noqa: E402
from debs import Failed, check  # noqa: E402
import images  # noqa: E402
import mclab  # noqa: E402

IMAGE = "debian12"
PACKAGES = ["memcoopd", "libmemcoop0", "libmemcoop-dev"]
MAN_PAGES = {"memcoopd.8", "memcoopctl.8", "memcoopd.conf.5", "libmemcoop.3"}

PROGRAM = r"""
#include <stdio.h>
#include <libmemcoop.h>
int main(void)
{
	/* no /dev/memcoop here: the library must say so, not crash */
	struct memcoop *mc = memcoop_open(0);
	printf("open: %s\n", mc ? "ok" : "failed as expected");
	return 0;
}
"""


def sh(upper, script):
    return images.chroot(IMAGE, upper, ["sh", "-c", script])


def run(src):
    t0 = time.monotonic()
    images.ensure(IMAGE)
    built = debs.ensure(src)
    tmp = mclab.mkdtemp("deb-host")
    upper = os.path.join(tmp, "overlay")
    rc, out = images.install_debs(IMAGE, upper, [built[p] for p in PACKAGES])
    check(rc == 0, "dpkg -i %s:\n%s" % (" ".join(PACKAGES), out[-3000:]))
    print("dpkg -i %s: ok" % " ".join(PACKAGES), flush=True)

    rc, out = sh(upper, "getent group memcoop")
    check(rc == 0 and out.startswith("memcoop:"), "no group memcoop: %r" % out)
    print("group: " + out.strip(), flush=True)

    # each chroot gets an empty /run, as a boot does: systemd-tmpfiles
    # makes the shipped config's qmp-dir there (debian/memcoopd.tmpfiles)
    rc, out = sh(upper, "systemd-tmpfiles --create memcoopd.conf && "
                 "memcoopd --check -f /etc/memcoop/memcoopd.conf")
    print("memcoopd --check: exit %d: %s" % (rc, out.strip()), flush=True)
    check(rc == 0, "memcoopd --check rejects the shipped config")
    rc, out = sh(upper, "grep -n '^socket-group' /etc/memcoop/memcoopd.conf")
    check(out.split(":", 1)[-1].strip() == "socket-group memcoop",
          "the shipped config does not name group memcoop: %r" % out)

    # --man=no: the minbase image has no man(1) to look the Documentation=
    # pages up with; that they are installed is checked below
    rc, out = sh(upper, "systemd-analyze verify --man=no "
                 "/lib/systemd/system/memcoopd.service 2>&1")
    print("systemd-analyze verify memcoopd.service: exit %d%s" % (
        rc, (":\n" + out.strip()) if out.strip() else ""), flush=True)
    check(rc == 0 and not out.strip(), "systemd-analyze verify complained")

    rc, out = sh(upper, "ls /etc/systemd/system/multi-user.target.wants/")
    check("memcoopd.service" in out.split(), "memcoopd.service is not enabled: %r" % out)

    have = set()
    for d, _, files in os.walk(src):
        if "/build" in d[len(src):] or "/.git" in d[len(src):] or "/debian" in d[len(src):]:
            continue
        have |= {f for f in files if f in MAN_PAGES}
    rc, out = sh(upper, "ls /usr/share/man/man3 /usr/share/man/man5 /usr/share/man/man8 "
                 "2>/dev/null")
    installed = {re.sub(r"\.gz$", "", f) for f in out.split()}
    print("man pages in the tree: %s; installed: %s" % (
        " ".join(sorted(have)) or "none yet (issue 16)",
        " ".join(sorted(installed & MAN_PAGES)) or "none"), flush=True)
    check(have <= installed, "man pages not installed: %s" % sorted(have - installed))

    with open(os.path.join(upper, "merged-prog.c"), "w") as f:
        f.write(PROGRAM)
    rc, out = images.in_overlay(IMAGE, upper, "\n".join([
        'cp "$1" "$ROOT/tmp/prog.c"',
        # the flags memcoop.pc gives (the image has no pkg-config)
        'pc=$(ls "$ROOT"/usr/lib/*/pkgconfig/memcoop.pc)',
        'libs=$(sed -n "s/^Libs: //p" "$pc" | sed "s/-L[^ ]*//g")',
        'echo "memcoop.pc Libs: $libs"',
        'chroot "$ROOT" sh -c "cc -Wall -Werror -o /tmp/prog /tmp/prog.c $libs && '
        'ldd /tmp/prog | grep -q libmemcoop.so.0 && /tmp/prog"']), [os.path.join(upper, "merged-prog.c")])
    print("a program built with libmemcoop-dev: exit %d: %s" % (rc, out.strip()), flush=True)
    check(rc == 0, "cannot build and run a program against libmemcoop-dev")

    rc, out = sh(upper, "apt-get -q -y purge memcoopd >/dev/null && "
                 "ls -d /etc/memcoop /etc/systemd/system/multi-user.target.wants/memcoopd.service "
                 "/lib/systemd/system/memcoopd.service 2>/dev/null; true")
    check(out.strip() == "", "left after apt purge memcoopd: %r" % out)
    print("apt purge memcoopd: /etc/memcoop and the unit gone", flush=True)
    mclab.cleanup_tmp()
    print("PASS in %.0f s" % (time.monotonic() - t0), flush=True)
    return 0


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    mclab.install_signal_handlers()
    try:
        return run(os.path.abspath(sys.argv[1]))
    except (Failed, mclab.LabError, subprocess.CalledProcessError) as e:
        print("FAIL: %s" % e, flush=True)
        mclab.cleanup_tmp(failed=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
