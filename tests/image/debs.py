"""The Debian packages of this tree, built as a package builder would:
`dpkg-buildpackage -us -uc -b` in a clean copy of the tree (the files git
tracks or would track, as they are in the work tree), never in the tree
itself.  Built once per content: <builddir>/debs/<hash of the files>/
holds the .debs, build.log, and build-seconds; later calls with the same
content reuse them (a lock serializes concurrent callers).

  python3 tests/image/debs.py [SRCDIR]     build (if needed), print the .debs
"""

import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lab"))
import mclab  # noqa: E402

SRCDIR = os.path.dirname(os.path.dirname(HERE))


class BuildError(mclab.LabError):
    pass


class Failed(Exception):
    """A check of the package tests failed (one class for all of them)."""


def check(cond, msg):
    if not cond:
        raise Failed(msg)


def say(msg):
    print(msg, flush=True)


def tree_files(src):
    r = subprocess.run(["git", "-C", src, "ls-files", "-z", "--cached", "--others",
                        "--exclude-standard"], capture_output=True, check=True)
    return sorted(f for f in r.stdout.decode().split("\0")
                  if f and os.path.isfile(os.path.join(src, f)))


# Files that do not go into the packages nor into their build: the tests
# of this directory (a change to them does not rebuild the packages).
NOT_HASHED = re.compile(r"^tests/image/[^/]*\.py$")


def tree_hash(src, files):
    h = hashlib.sha256()
    for f in files:
        if NOT_HASHED.match(f):
            continue
        h.update(f.encode() + b"\0")
        with open(os.path.join(src, f), "rb") as fp:
            h.update(hashlib.sha256(fp.read()).digest())
        h.update(b"%o" % (os.stat(os.path.join(src, f)).st_mode & 0o111))
    return h.hexdigest()[:16]


def changelog_version(src):
    r = subprocess.run(["dpkg-parsechangelog", "-l", os.path.join(src, "debian", "changelog"),
                        "-S", "Version"], capture_output=True, text=True, check=True)
    return r.stdout.strip()


def debs_dir(builddir=None):
    return os.path.join(os.path.abspath(builddir or mclab._default_builddir()), "debs")


def ensure(src=SRCDIR, builddir=None):
    """{package name: .deb path} of this tree; built when not yet built."""
    src = os.path.abspath(src)
    files = tree_files(src)
    key = tree_hash(src, files)
    top = debs_dir(builddir)
    out = os.path.join(top, key)
    os.makedirs(top, exist_ok=True)
    with mclab._flock(os.path.join(top, ".lock")):
        if not os.path.exists(os.path.join(out, ".complete")):
            shutil.rmtree(out, ignore_errors=True)
            # builds of other contents: kept a day (a test running now
            # may be using one), then removed
            for old in glob.glob(os.path.join(top, "*", ".complete")):
                if time.time() - os.stat(old).st_mtime > 24 * 3600:
                    shutil.rmtree(os.path.dirname(old), ignore_errors=True)
            build(src, files, out)
    return {os.path.basename(p).split("_")[0]: p
            for p in sorted(glob.glob(os.path.join(out, "*.deb")))}


def build(src, files, out):
    ver = changelog_version(src)
    tmp = mclab.mkdtemp("debs")
    tree = os.path.join(tmp, "memcoop-" + ver.split("-")[0])
    for f in files:
        d = os.path.join(tree, os.path.dirname(f))
        os.makedirs(d, exist_ok=True)
        shutil.copy2(os.path.join(src, f), d)
    sys.stderr.write("debs: dpkg-buildpackage -us -uc -b in %s\n" % tree)
    t0 = time.monotonic()
    env = dict(os.environ, LC_ALL="C.UTF-8")
    for v in ("MESON_BUILD_ROOT", "MESON_SOURCE_ROOT", "MESON_SUBDIR", "MESONINTROSPECT",
              "MCLAB_BUILDDIR", "MCLAB_SRCDIR", "PYTHONPATH"):
        env.pop(v, None)
    # the build's own temporary files (dwz left mldbm-elf-* in the tests'
    # TMPDIR) go with the rest of @tmp
    env["TMPDIR"] = os.path.join(tmp, "tmp")
    os.makedirs(env["TMPDIR"])
    r = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=tree, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    secs = time.monotonic() - t0
    os.makedirs(out)
    with open(os.path.join(out, "build.log"), "w") as f:
        f.write(r.stdout)
    if r.returncode != 0:
        mclab.cleanup_tmp()
        raise BuildError("dpkg-buildpackage failed (exit %d); log in %s:\n%s" % (
            r.returncode, os.path.join(out, "build.log"), r.stdout[-4000:]))
    for p in [p for ext in ("deb", "changes", "buildinfo")
              for p in glob.glob(os.path.join(tmp, "*." + ext))]:
        shutil.copy2(p, out)
    with open(os.path.join(out, "build-seconds"), "w") as f:
        f.write("%.1f\n" % secs)
    mclab.cleanup_tmp()
    open(os.path.join(out, ".complete"), "w").close()
    sys.stderr.write("debs: built in %.1f s\n" % secs)


def repack(deb, tmp, suffix, edit=None):
    """The package @deb at version VERSION@suffix, as a newer build of it
    would be: unpacked, @edit(tree, old, new) applied (if given), its
    md5sums made again, packed into @tmp.  Returns (path, new version)."""
    d = os.path.join(tmp, "repack")
    subprocess.run(["dpkg-deb", "-R", deb, d], check=True)
    ctl_path = os.path.join(d, "DEBIAN", "control")
    ctl = open(ctl_path).read()
    old = re.search(r"^Version: (\S+)$", ctl, re.M).group(1)
    new = old + suffix
    open(ctl_path, "w").write(ctl.replace("Version: " + old, "Version: " + new))
    if edit is not None:
        edit(d, old, new)
    md5 = subprocess.run("find . -type f ! -path './DEBIAN/*' -printf '%P\\0' | "
                         "xargs -0 md5sum > DEBIAN/md5sums", shell=True, cwd=d)
    if md5.returncode != 0:
        raise BuildError("md5sums for the repacked %s" % os.path.basename(deb))
    name = re.search(r"^Package: (\S+)$", ctl, re.M).group(1)
    arch = re.search(r"^Architecture: (\S+)$", ctl, re.M).group(1)
    out = os.path.join(tmp, "%s_%s_%s.deb" % (name, new, arch))
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", d, out], check=True,
                   stdout=subprocess.DEVNULL)
    shutil.rmtree(d)
    return out, new


def changes_file(debs):
    d = os.path.dirname(next(iter(debs.values())))
    return glob.glob(os.path.join(d, "*.changes"))[0]


def build_seconds(debs):
    d = os.path.dirname(next(iter(debs.values())))
    return float(open(os.path.join(d, "build-seconds")).read())


if __name__ == "__main__":
    try:
        for name, path in ensure(sys.argv[1] if len(sys.argv) > 1 else SRCDIR).items():
            print(name, path)
    except mclab.LabError as e:
        sys.exit("debs: FAIL: %s" % e)
