"""Helpers shared by the benchmark scripts: the BENCH lines that the
in-guest programs print,

    BENCH name=<metric> value=<v> unit=<u> baseline=<b> ratio=<b/v>

read back from a guest's output.  The scripts one directory below put
tests/bench on sys.path to import it.
"""
import re
import sys


def bench(out, name):
    """(value, baseline, ratio) of the BENCH line called name in out, as
    floats; prints FAIL and exits 1 when there is none."""
    m = re.search(r"^BENCH name=%s value=([0-9.]+) unit=\S+ baseline=([0-9.]+) ratio=([0-9.]+)"
                  % re.escape(name), out, re.M)
    if not m:
        print("FAIL: no BENCH line %s" % name, flush=True)
        sys.exit(1)
    return float(m.group(1)), float(m.group(2)), float(m.group(3))
