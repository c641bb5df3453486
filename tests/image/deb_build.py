#!/usr/bin/env python3
"""The Debian packages: built, lintian-clean, one version, safe scripts.

  1. `dpkg-buildpackage -us -uc -b` in a clean copy of the tree (debs.py);
  2. `lintian --pedantic` on the .changes: no error and no warning
     (overrides only in debian/*.lintian-overrides, each with its reason);
  3. one version: meson's project version is the upstream version of
     debian/changelog, dkms.conf's PACKAGE_VERSION and every package's;
  4. the packages hold what they must: memcoop-dkms the DKMS tree at
     /usr/src/memcoop-VERSION (dkms.conf, every source Kbuild names, the
     ABI header) and the modprobe file; libmemcoop0 the library under its
     soname and a symbols file; libmemcoop-dev headers, .so link and .pc;
     memcoopd the daemon, memcoopctl, the unit, /etc/memcoop/memcoopd.conf
     as a conffile letting group memcoop read the socket, the sysusers
     file for that group;
  5. memcoopd is restarted on upgrade, never stopped first: its prerm does
     not stop the unit on upgrade and its postinst restarts it (the
     agent keeps guest targets across a restart; a stop would not).

Usage: deb_build.py SOURCE_ROOT MESON_PROJECT_VERSION.  Exit 0 pass, 1 fail.
"""

import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lab"))
import debs  # noqa: E402
from debs import Failed, check  # noqa: E402
import mclab  # noqa: E402


def contents(deb):
    r = subprocess.run(["dpkg-deb", "--fsys-tarfile", deb], capture_output=True, check=True)
    t = subprocess.run(["tar", "-t"], input=r.stdout, capture_output=True, check=True)
    return {"/" + p.lstrip("./").rstrip("/") for p in t.stdout.decode().splitlines()}


def control(deb, name):
    r = subprocess.run(["dpkg-deb", "-I", deb, name], capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else ""


def fsys_file(deb, path):
    r = subprocess.run(["dpkg-deb", "--fsys-tarfile", deb], capture_output=True, check=True)
    t = subprocess.run(["tar", "-xO", "." + path], input=r.stdout, capture_output=True)
    check(t.returncode == 0, "%s has no %s" % (os.path.basename(deb), path))
    return t.stdout.decode()


def run(src, meson_version):
    built = debs.ensure(src)
    print("packages built in %.1f s (dpkg-buildpackage -us -uc -b): %s" % (
        debs.build_seconds(built), " ".join(sorted(built))), flush=True)
    for p in ("memcoop-dkms", "libmemcoop0", "libmemcoop-dev", "memcoopd"):
        check(p in built, "no package %s" % p)

    # 2. lintian
    # lintian's own temporary files (it leaves mldbm-elf-* behind) in a
    # directory of ours
    ltmp = mclab.mkdtemp("lintian")
    r = subprocess.run(["lintian", "--pedantic", "--display-info", "--fail-on", "none",
                        debs.changes_file(built)], capture_output=True, text=True,
                       env=dict(os.environ, TMPDIR=ltmp))
    out = r.stdout + r.stderr
    print("lintian --pedantic:\n" + (out.strip() or "(nothing)"), flush=True)
    bad = [x for x in out.splitlines() if re.match(r"^[EW]: ", x)]
    check(r.returncode == 0, "lintian exited %d" % r.returncode)
    check(not bad, "lintian errors/warnings:\n  " + "\n  ".join(bad))
    for ov in [f for f in os.listdir(os.path.join(src, "debian"))
               if f.endswith("lintian-overrides")]:
        reason = False      # a comment since the last blank line
        for line in open(os.path.join(src, "debian", ov)).read().splitlines():
            if line.startswith("#"):
                reason = True
            elif not line.strip():
                reason = False
            else:
                check(reason, "debian/%s: override %r has no reason (a comment above it)"
                      % (ov, line))

    # 3. one version
    chl = debs.changelog_version(src)
    upstream = re.sub(r"-[^-]+$", "", chl)
    dkms_conf = open(os.path.join(src, "guest-driver", "dkms", "dkms.conf")).read()
    m = re.search(r'^PACKAGE_VERSION="?([^"\n]+)"?', dkms_conf, re.M)
    versions = {"meson project()": meson_version, "debian/changelog (upstream)": upstream,
                "guest-driver/dkms/dkms.conf": m.group(1) if m else None}
    for p, deb in built.items():
        v = subprocess.run(["dpkg-deb", "-f", deb, "Version"], capture_output=True,
                           text=True, check=True).stdout.strip()
        versions["package " + p] = re.sub(r"-[^-]+$", "", v)
    print("versions: " + ", ".join("%s %s" % kv for kv in versions.items()), flush=True)
    check(len(set(versions.values())) == 1, "versions disagree: %s" % versions)
    ver = meson_version

    # 4. contents
    dk = contents(built["memcoop-dkms"])
    tree = "/usr/src/memcoop-" + ver
    kbuild = open(os.path.join(src, "guest-driver", "kernel", "Kbuild")).read()
    objs = re.findall(r"(\w+)\.o", kbuild.split("memcoop-y", 1)[1].split("\n", 1)[0])
    want = [tree + "/dkms.conf", tree + "/proto/memcoop.h",
            tree + "/guest-driver/kernel/Kbuild", "/lib/modprobe.d/memcoop.conf"] + \
        [tree + "/guest-driver/kernel/%s.c" % o for o in objs] + \
        [tree + "/guest-driver/kernel/" + h for h in os.listdir(
            os.path.join(src, "guest-driver", "kernel")) if h.endswith(".h")]
    missing = [w for w in want if w not in dk]
    check(not missing, "memcoop-dkms lacks %s" % missing)
    check(not [p for p in dk if re.search(r"\.(o|ko|cmd|mod)$", p)],
          "memcoop-dkms ships build products")
    mp = fsys_file(built["memcoop-dkms"], "/lib/modprobe.d/memcoop.conf")
    check(re.search(r"^blacklist virtio_balloon$", mp, re.M),
          "the modprobe file does not keep virtio_balloon off the device")
    check("PACKAGE_VERSION=\"%s\"" % ver in fsys_file(built["memcoop-dkms"],
                                                      tree + "/dkms.conf"),
          "the installed dkms.conf is not for version %s" % ver)
    lib = contents(built["libmemcoop0"])
    check([p for p in lib if re.search(r"/libmemcoop\.so\.0(\.|$)", p)],
          "libmemcoop0 has no libmemcoop.so.0: %s" % sorted(lib))
    check("libmemcoop.so.0 libmemcoop0" in control(built["libmemcoop0"], "symbols"),
          "libmemcoop0 has no symbols file")
    dev = contents(built["libmemcoop-dev"])
    for w in ("/usr/include/libmemcoop.h", "/usr/include/memcoop.h"):
        check(w in dev, "libmemcoop-dev lacks %s" % w)
    check([p for p in dev if p.endswith("/pkgconfig/memcoop.pc")], "no memcoop.pc")
    check([p for p in dev if p.endswith("/libmemcoop.so")], "no libmemcoop.so link")
    d = contents(built["memcoopd"])
    for w in ("/usr/sbin/memcoopd", "/usr/bin/memcoopctl", "/lib/systemd/system/memcoopd.service",
              "/etc/memcoop/memcoopd.conf", "/usr/lib/sysusers.d/memcoopd.conf"):
        check(w in d, "memcoopd lacks %s" % w)
    check("/etc/memcoop/memcoopd.conf" in control(built["memcoopd"], "conffiles"),
          "/etc/memcoop/memcoopd.conf is not a conffile")
    conf = fsys_file(built["memcoopd"], "/etc/memcoop/memcoopd.conf")
    check(re.search(r"^socket-group memcoop$", conf, re.M),
          "the shipped memcoopd.conf does not give the socket to group memcoop")
    check(re.search(r"^g memcoop\b", fsys_file(built["memcoopd"],
                                               "/usr/lib/sysusers.d/memcoopd.conf"), re.M),
          "no group memcoop in memcoopd's sysusers file")

    # 5. restart, not stop, on upgrade
    prerm = control(built["memcoopd"], "prerm")
    postinst = control(built["memcoopd"], "postinst")
    check("systemd-sysusers" in postinst, "memcoopd's postinst does not create its group")
    stops = re.search(r"deb-systemd-invoke stop 'memcoopd.service'", prerm)
    check(not stops or re.search(r'"\$1" = remove\b[^\n]*\n[^\n]*deb-systemd-invoke stop', prerm),
          "memcoopd's prerm stops the daemon on upgrade (a stop restores guest targets):\n" +
          prerm)
    check(re.search(r"_dh_action=restart", postinst),
          "memcoopd's postinst does not restart the daemon after an upgrade:\n" + postinst)
    print("PASS", flush=True)
    return 0


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    try:
        return run(os.path.abspath(sys.argv[1]), sys.argv[2])
    except (Failed, mclab.LabError, subprocess.CalledProcessError) as e:
        print("FAIL: %s" % e, flush=True)
        return 1
    finally:
        mclab.cleanup_tmp()


if __name__ == "__main__":
    sys.exit(main())
