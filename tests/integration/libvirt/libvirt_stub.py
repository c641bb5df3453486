#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""memcoopd's libvirt backend against a libvirtd that accepts and never
answers: a Unix socket at the libvirt URI (qemu+unix:///system?socket=...)
that takes connections and says nothing.  libvirt's virConnectOpen then
never returns; memcoopd must go on regardless: its ticks run,
memcoopctl answers, /metrics answers, the stuck connection is logged, and
SIGTERM ends it promptly with exit 0.  A memcoopd that calls libvirt in its
event loop never serves its control socket here.

No libvirtd, no guest: a few seconds.  Usage: libvirt_stub.py MEMCOOPD
MEMCOOPCTL.  Exit 0 pass, 1 fail.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import mclab


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    memcoopd, memcoopctl = sys.argv[1:]
    tmp = mclab.mkdtemp("libvirt-stub")
    stub_path = os.path.join(tmp, "libvirt-sock")
    stub = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stub.bind(stub_path)
    stub.listen(16)
    held = []                       # accepted, never answered
    sock = os.path.join(tmp, "ctl.sock")
    port = 19000 + (os.getpid() + 500) % 1000
    conf = os.path.join(tmp, "memcoopd.conf")
    with open(conf, "w") as f:
        f.write('backend libvirt\nlibvirt-uri "qemu+unix:///system?socket=%s"\n'
                'socket "%s"\nstate-dir "%s/state"\ntick 1s\nksm unmanaged\n'
                'metrics 127.0.0.1:%d\n' % (stub_path, sock, tmp, port))
    log_path = os.path.join(tmp, "memcoopd.log")
    logf = open(log_path, "w")
    p = subprocess.Popen([memcoopd, "-d", "-v", "-f", conf], stdout=logf,
                         stderr=subprocess.STDOUT)
    fails = []

    def log():
        logf.flush()
        with open(log_path) as f:
            return f.read()

    try:
        stub.settimeout(15)
        try:
            held.append(stub.accept()[0])
            print("ok: memcoopd connected to the stub libvirtd", flush=True)
        except socket.timeout:
            fails.append("memcoopd never connected to the stub")
        ticks = []
        t0 = time.time()
        while time.time() - t0 < 14:
            t1 = time.time()
            r = subprocess.run([memcoopctl, "-t", "3", "-s", sock, "--json",
                                "status"], capture_output=True, text=True,
                               timeout=30)
            took = time.time() - t1
            if r.returncode != 0 or took > 2.5:
                fails.append("memcoopctl status: exit %d after %.1f s: %s" % (
                    r.returncode, took, r.stderr.strip()))
                break
            ticks.append(json.loads(r.stdout)["ticks"])
            time.sleep(1)
        if ticks:
            print("ok: memcoopctl answered %d times, ticks %d..%d" % (
                len(ticks), ticks[0], ticks[-1]), flush=True)
        if len(ticks) < 5 or ticks[-1] - ticks[0] < 5:
            fails.append("the ticks did not go on: %s" % ticks)
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                        timeout=3) as m:
                body = m.read().decode()
            if "memcoop" not in body:
                fails.append("/metrics without memcoop metrics")
            else:
                print("ok: /metrics answers", flush=True)
        except OSError as e:
            fails.append("/metrics: %s" % e)
        if "connecting to qemu+unix" not in log():
            fails.append("the stuck connection is not logged")
        else:
            print("ok: the stuck connection is logged", flush=True)
        t1 = time.time()
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(10)
            took = time.time() - t1
            if rc != 0:
                fails.append("memcoopd exit %d on SIGTERM" % rc)
            else:
                print("ok: SIGTERM: exit 0 after %.1f s" % took, flush=True)
        except subprocess.TimeoutExpired:
            fails.append("memcoopd did not exit within 10 s of SIGTERM")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        for s in held:
            s.close()
        stub.close()
    if fails:
        print(log()[-3000:])
        for f in fails:
            print("FAIL: " + f)
    mclab.cleanup_tmp(failed=bool(fails))
    print("PASS" if not fails else "FAILED", flush=True)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
