"""The host's KSM, for the tests that drive it (ksm-merge, the agent bench).

save() records every setting, restore() puts them back (and says what it
could not), unmerge() gives an unmerged start and fails when KSM does not
get there.  The advisor knobs (Linux 6.7+) are optional: a host without
them has the rest.
"""
import os
import signal
import subprocess
import time

KSM = "/sys/kernel/mm/ksm"
KNOBS = ["run", "pages_to_scan", "sleep_millisecs", "advisor_mode",
         "advisor_target_scan_time", "advisor_max_cpu", "use_zero_pages"]
# restore() writes in this order: advisor_mode resets pages_to_scan, and
# run goes last so that ksmd starts with the old settings.
RESTORE_ORDER = ["advisor_mode", "advisor_target_scan_time", "advisor_max_cpu",
                 "pages_to_scan", "sleep_millisecs", "use_zero_pages", "run"]


class KSMError(Exception):
    pass


def available():
    return os.path.isdir(KSM)


def read(name):
    with open(os.path.join(KSM, name)) as f:
        return f.read().strip()


def pages(name):
    return int(read(name))


def write(name, value):
    with open(os.path.join(KSM, name), "w") as f:
        f.write(str(value))


def save():
    """Every KSM setting this host has, as read from sysfs."""
    out = {}
    for k in KNOBS:
        try:
            out[k] = read(k)
        except OSError:
            pass
    return out


def _scan_time(saved):
    # with the scan-time advisor, pages_to_scan is the advisor's to set
    return "[scan-time]" in saved.get("advisor_mode", "")


def restore(saved):
    """Put back what save() read.  Returns the settings that are not back
    (empty when all are)."""
    for k in RESTORE_ORDER:
        if k not in saved or (k == "pages_to_scan" and _scan_time(saved)):
            continue
        v = saved[k]
        if k == "advisor_mode":
            v = v[v.index("[") + 1:v.index("]")]
        try:
            write(k, v)
        except OSError:
            pass        # reported below
    return differences(saved)


def differences(saved):
    """Settings that differ from @saved, as 'knob: saved -> now'."""
    now = save()
    return ["%s: %s -> %s" % (k, saved[k], now.get(k)) for k in KNOBS
            if k in saved and now.get(k) != saved[k] and
            not (k == "pages_to_scan" and _scan_time(saved))]


def unmerge(timeout=60):
    """Unmerge every page (run=2), wait until nothing is shared (nor
    merged with the zero page: ksm_zero_pages, use_zero_pages), stop
    (run=0).  Raises KSMError if that is not reached."""
    def left():
        zero = os.path.join(KSM, "ksm_zero_pages")
        return pages("pages_sharing") + (pages("ksm_zero_pages")
                                         if os.path.exists(zero) else 0)

    write("run", 2)
    deadline = time.monotonic() + timeout
    while left() != 0:
        if time.monotonic() > deadline:
            n = left()
            write("run", 0)
            raise KSMError("unmerge: %d pages still shared or zero-merged after %ds" % (
                n, timeout))
        time.sleep(0.5)
    write("run", 0)


def stop(proc, timeout=20, sig=signal.SIGTERM):
    """Stop @proc (a Popen): @sig, then SIGKILL if it has not exited within
    @timeout seconds.  Returns its exit status, None if it had to be
    killed."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None
