"""hostapps: the host's Debian programs in lab guests (Guest(host_usr=True)).

The guest sees the host's /usr read-only through virtio-9p, so Debian's
redis-server, redis-benchmark, redis-cli, memcached and java run in it
unmodified.  This module holds what the tests, the apps benchmark and
the demo share: Java compiled on the host (the JRE's own jdk.compiler
module, so openjdk-17-jre-headless is enough) and files carried into
the guest inside its shell script.
"""

import base64
import glob
import os
import shlex
import subprocess

import mclab

# Programs --host-usr must provide (the apps benchmark and the demo use them).
PROGRAMS = ["redis-server", "redis-cli", "redis-benchmark", "memcached", "java"]

# The guest's loopback is down after boot: servers listen on 127.0.0.1.
LOOPBACK_UP = "ip link set lo up || exit 90\n"


def missing_programs():
    """The PROGRAMS the host lacks (each as 'NAME (package)')."""
    pkgs = {"redis-server": "redis-server", "redis-cli": "redis-tools",
            "redis-benchmark": "redis-tools", "memcached": "memcached",
            "java": "openjdk-17-jre-headless"}
    return ["%s (%s)" % (p, pkgs[p]) for p in PROGRAMS
            if not os.access("/usr/bin/" + p, os.X_OK)]


def javac(sources, outdir):
    """Compile the .java @sources into @outdir with the host JRE's compiler
    module; {class file name: bytes}."""
    os.makedirs(outdir, exist_ok=True)
    r = subprocess.run(["java", "-m", "jdk.compiler/com.sun.tools.javac.Main",
                        "--release", "17", "-d", outdir] + list(sources),
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise mclab.LabError("javac %s failed:\n%s%s" % (" ".join(sources), r.stdout, r.stderr))
    return {os.path.basename(p): open(p, "rb").read()
            for p in glob.glob(os.path.join(outdir, "*.class"))}


def carry(files, guest_dir="/tmp/classes"):
    """A shell snippet that writes @files ({name: bytes}) into @guest_dir
    (the guest script carries them: the initramfs is shared by all runs)."""
    lines = ["mkdir -p %s" % shlex.quote(guest_dir)]
    for name, data in sorted(files.items()):
        lines.append("base64 -d > %s <<'MCLAB_EOF'\n%s\nMCLAB_EOF" % (
            shlex.quote(os.path.join(guest_dir, name)),
            base64.encodebytes(data).decode().strip()))
    return "\n".join(lines) + "\n"
