"""Helpers shared by the benchmark scripts: the BENCH lines,

    BENCH name=<metric> value=<v> unit=<u> baseline=<b> ratio=<b/v>

printed (emit) or read back from a guest's output (bench).  The scripts
one directory below put tests/bench on sys.path to import it.
"""
import math
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


def emit(name, value, unit, baseline, higher_better=False, never=None, fmt="%.3f"):
    """Print the BENCH line of metric @name: @value is memcoop's, @baseline
    the baseline's; ratio: how many times better memcoop is (above 1
    favours memcoop): baseline / value, or value / baseline when
    @higher_better.
    None for value or baseline: that run never got there within @never
    (the same unit): printed as ">never", and the ratio is a bound; n/a
    without @never.  @fmt: how value and baseline are printed."""
    def show(v):
        if v is None:
            return "n/a" if never is None else ">" + fmt % never
        return fmt % v
    v = never if value is None else float(value)
    b = never if baseline is None else float(baseline)
    top, bottom = (v, b) if higher_better else (b, v)
    if v is None or b is None or bottom == 0 or math.isnan(top) or math.isnan(bottom):
        ratio = "nan"
    else:
        ratio = "%.3f" % (top / bottom)
        if value is None and baseline is None:
            ratio = "nan"               # neither got there: nothing to compare
        elif value is None or baseline is None:
            # the missing one is at least @never: a bound on the ratio
            ratio = (">" if (baseline is None) != higher_better else "<") + ratio
    print("BENCH name=%s value=%s unit=%s baseline=%s ratio=%s" % (
        name, show(value), unit, show(baseline), ratio), flush=True)
