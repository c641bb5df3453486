#!/usr/bin/env python3
"""The lab must not pass silently: a failing program, a kernel WARNING in
the guest, a hung guest, a crashed guest kernel and a guest that never
powers off each fail the run, and no run leaves a QEMU process or a
temporary directory behind."""
import os
import subprocess
import sys

import mclab

MCLAB = os.path.join(os.environ["MCLAB_SRCDIR"], "tests", "lab", "mclab")
failures = passes = 0


def check(cond, what):
    global failures, passes
    print("%s: %s" % ("ok" if cond else "FAIL", what), flush=True)
    if cond:
        passes += 1
    else:
        failures += 1


def qemu_alive(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            return "\nState:\tZ" not in f.read()
    except FileNotFoundError:
        return False


def lab_run(*args):
    r = subprocess.run([sys.executable, MCLAB, "run", "--quiet"] + list(args),
                       capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


mclab.install_signal_handlers()


def fake_qmp(lines):
    """QMP() against mclab.fake_qmp() writing @lines, then answering the
    capabilities command: its events, or the LabError it raised."""
    import tempfile
    path = os.path.join(tempfile.mkdtemp(prefix=mclab.TMP_PREFIX + "qmp-"), "s")
    srv, t, _ = mclab.fake_qmp(path, [line.encode() for line in lines],
                               reply=b'{"return": {}}\r\n')
    try:
        q = mclab.QMP(path, timeout=10)
        q.close()
        return q.events
    except mclab.LabError as e:
        return e
    finally:
        t.join(10)
        srv.close()
        os.unlink(path)
        os.rmdir(os.path.dirname(path))


# 0. QMP: QEMU may write an event before its greeting (CI saw RESUME
#    first); anything else first is not QEMU
GREETING = '{"QMP": {"version": {}, "capabilities": []}}'
RESUME = '{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "RESUME"}'
got = fake_qmp([RESUME, GREETING])
check(isinstance(got, list) and [e["event"] for e in got] == ["RESUME"],
      "QMP: an event before the greeting is kept as an event (%r)" % (got,))
got = fake_qmp(['{"return": {}}', GREETING])
check(isinstance(got, mclab.LabError) and "not a QMP greeting" in str(got),
      "QMP: a reply before the greeting is refused (%r)" % (got,))

# 1. the program's exit status comes back, zero or not
rc, out, err = lab_run("--", "sh", "-c", "echo from-guest; exit 7")
check(rc == 7, "a program exiting 7 makes the CLI exit 7 (got %d)" % rc)
rc, out, err = lab_run("--", "true")
check(rc == 0, "a program exiting 0 makes the CLI exit 0 (got %d: %s)" % (rc, err.strip()[-300:]))

# 2. a real kernel WARNING fails the run even though the program exits 0
rc, out, err = lab_run("--", "insmod", "/lib/modules/mc/mctest_warn.ko")
check(rc == 125, "a guest WARNING fails the run with 125 (got %d)" % rc)
check("WARNING:" in err and "mclab negative test" in err,
      "the failure shows the WARNING from the console")

# 3. the same through the Python API raises LabError
tmpdir = None
try:
    with mclab.Guest(name="warn") as g:
        tmpdir = g.tmp
        g.start("insmod", "/lib/modules/mc/mctest_warn.ko")
        g.wait_exit(timeout=120)
    check(False, "Guest.wait_exit raises LabError on a WARNING")
except mclab.LabError as e:
    check("kernel problem" in str(e), "Guest.wait_exit raises LabError on a WARNING")

# 4. a hung guest program: a timeout, QEMU killed, nothing left behind
pid = None
try:
    with mclab.Guest(name="hang", timeout=60) as g:
        tmpdir = g.tmp
        g.start("sleep", "100000")
        pid = g.qemu_pid
        g.wait_exit(timeout=5)
    check(False, "a hung program times out")
except mclab.LabError as e:
    check("timeout" in str(e) and "console tail" in str(e),
          "a hung program times out with the console tail")
check(pid is not None and not qemu_alive(pid), "QEMU of the hung guest is gone")
check(tmpdir is not None and not os.path.exists(tmpdir), "its temporary directory is gone")

# 5. a guest whose kernel panics: QEMU exits, the lab says so
rc, out, err = lab_run("--timeout", "120", "--", "sh", "-c", "echo c > /proc/sysrq-trigger")
check(rc == 125, "a guest kernel crash fails the run with 125 (got %d)" % rc)

# 6. a guest that does not power off after its program (the test module
#    holds the power-off in a reboot notifier): 125, the lab says why
rc, out, err = lab_run("--timeout", "300", "--", "insmod",
                       "/lib/modules/mc/mctest_warn.ko", "hang_poweroff=1")
check(rc == 125 and "did not power off" in err,
      "a guest that never powers off fails the run with 125 (got %d: %s)" % (
          rc, err.strip()[-300:]))

print("lab-negative: %d passed, %d failed" % (passes, failures))
sys.exit(1 if failures else 0)
