#!/usr/bin/env python3
"""memcoop.ko's module parameters are what docs/memcoop-ko.md says.

From the table in docs/memcoop-ko.md (name, default, rw, range "MIN..MAX"
in its text; alloc_order's top is the kernel's MAX_PAGE_ORDER, read from
the guest's /proc/buddyinfo):

  host   modinfo lists exactly the documented parameters, and each numeric
         one's description states the documented range and default;
  guest  (the lab's memcoop.ko unloaded first, then loaded by the test)
         - a plain insmod: every parameter has its documented default, and
           is writable in sysfs exactly when the table says rw;
         - sysfs: for each rw number, MIN-1 (when MIN > 0), MAX+1, 2^32,
           -1 and "abc" are refused and the value stays; MIN and MAX are
           taken; a read-only one refuses writes;
         - insmod: each of those bad values keeps the module from loading
           (an out-of-range number logs "NAME=V refused: outside MIN..MAX");
           MIN and MAX load and read back.
Exit 0 pass, 1 fail.
"""
import os
import re
import subprocess
import sys

import mclab

SRC = os.environ.get("MCLAB_SRCDIR") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))))
DOC = os.path.join(SRC, "docs", "memcoop-ko.md")
failures = 0


def check(cond, what):
    global failures
    print("%s: %s" % ("ok" if cond else "FAIL", what), flush=True)
    if not cond:
        failures += 1
    return cond


def doc_params():
    """{name: {"default": str, "rw": bool, "range": (min, max|"MAX_PAGE_ORDER")|None}}"""
    text = open(DOC).read()
    sec = text.split("## Module parameters", 1)[1].split("\n## ", 1)[0]
    out = {}
    for m in re.finditer(r"^\| `(\w+)` \| (\S+) \| (rw)? ?\| (.*) \|$", sec, re.M):
        name, default, rw, what = m.groups()
        rng = re.search(r"\b(\d+)\.\.(\d+)\b", what)
        if rng:
            rng = (int(rng.group(1)), int(rng.group(2)))
        elif "MAX_PAGE_ORDER" in what and re.search(r"\b0: ", what):
            rng = (0, "MAX_PAGE_ORDER")
        out[name] = {"default": default, "rw": rw == "rw", "range": rng}
    return out


GUEST = r"""
KO=/lib/modules/mc/memcoop.ko
P=/sys/module/memcoop/parameters
rmmod memcoop || exit 1
echo "ORDERS $(awk 'NR==1 {print NF - 4}' /proc/buddyinfo)"
insmod $KO; echo "LOAD $?"
for f in $P/*; do echo "DEF $(basename $f) $(cat $f) $(stat -c %%a $f)"; done
%(sysfs)s
rmmod memcoop; echo "UNLOAD $?"
dmesg -c > /dev/null
%(insmod)s
exit 0
"""


def bad_values(lo, hi):
    return ([str(lo - 1)] if lo > 0 else []) + [str(hi + 1), "4294967296", "-1", "abc"]


def main():
    mclab.install_signal_handlers()
    params = doc_params()
    check(len(params) >= 10, "docs/memcoop-ko.md documents %d parameters" % len(params))
    nums = {n: p for n, p in params.items() if p["range"]}
    bools = {n: p for n, p in params.items() if not p["range"]}
    for n, p in bools.items():
        check(p["default"] in ("Y", "N"), "%s: no range documented, so a bool (default %s)" % (
            n, p["default"]))

    # host: modinfo agrees with the table
    ko = mclab.Lab().ko
    r = subprocess.run(["modinfo", "-F", "parm", ko], capture_output=True, text=True)
    mod = dict(re.findall(r"^(\w+):(.*)$", r.stdout, re.M))
    check(set(mod) == set(params), "modinfo parameters = documented ones (only in module: %s; "
          "only in docs: %s)" % (sorted(set(mod) - set(params)), sorted(set(params) - set(mod))))
    for n, p in nums.items():
        desc = mod.get(n, "")
        lo, hi = p["range"]
        want = "%d..%s" % (lo, hi if isinstance(hi, int) else "MAX_PAGE_ORDER")
        check(want in desc and re.search(r"default %s\b" % p["default"], desc),
              "%s: modinfo says range %s and default %s: %r" % (n, want, p["default"], desc))

    # The guest's MAX_PAGE_ORDER is only known there: the script reads it
    # first, so for alloc_order the host sends "MAXORD" and the shell
    # substitutes it.
    def val(v):
        return "$MAXORD" if v == "MAX_PAGE_ORDER" else str(v)

    def plus1(v):
        return "$((MAXORD + 1))" if v == "MAX_PAGE_ORDER" else str(v + 1)

    sysfs, insmod = ["MAXORD=$(($(awk 'NR==1 {print NF - 4}' /proc/buddyinfo) - 1))"], \
        ["MAXORD=$(($(awk 'NR==1 {print NF - 4}' /proc/buddyinfo) - 1))"]
    for n, p in nums.items():
        lo, hi = p["range"]
        bads = ([str(lo - 1)] if lo > 0 else []) + [plus1(hi), "4294967296", "-1", "abc"]
        for v in bads:
            if p["rw"]:
                sysfs.append('echo %s > $P/%s 2>/dev/null; echo "SET %s %s $? $(cat $P/%s)"' % (
                    v, n, n, v, n))
            insmod.append('insmod $KO %s=%s 2>/dev/null; rc=$?; echo "INS %s %s $rc"; '
                          '[ $rc = 0 ] && rmmod memcoop' % (n, v, n, v))
        for v in (str(lo), val(hi)):
            if p["rw"]:
                sysfs.append('echo %s > $P/%s; echo "SETOK %s %s $? $(cat $P/%s)"' % (
                    v, n, n, v, n))
            insmod.append('insmod $KO %s=%s; echo "INSOK %s %s $? $(cat $P/%s)"; '
                          'rmmod memcoop' % (n, v, n, v, n))
        if p["rw"]:
            sysfs.append("echo %s > $P/%s" % (p["default"], n))
        else:
            sysfs.append('echo %d > $P/%s 2>/dev/null; echo "SETRO %s $? $(cat $P/%s)"' % (
                lo, n, n, n))
    insmod.append('echo "REFUSED-LOG"; dmesg | grep refused')
    script = GUEST % {"sysfs": "\n".join(sysfs), "insmod": "\n".join(insmod)}

    with mclab.Guest(mem=512, name="modparams", timeout=600) as g:
        g.start("sh", "-c", script)
        rc = g.wait_exit(timeout=600)
        out = g.output
    check(rc == 0, "guest script ran (exit %d)" % rc)
    m = re.search(r"^ORDERS (\d+)$", out, re.M)
    maxord = int(m.group(1)) - 1 if m else -1
    check(maxord >= 9, "the guest's MAX_PAGE_ORDER is %d" % maxord)

    def hi_of(p):
        return maxord if p["range"][1] == "MAX_PAGE_ORDER" else p["range"][1]

    check(re.search(r"^LOAD 0$", out, re.M), "plain insmod memcoop.ko")
    defs = {n: (v, mode) for n, v, mode in re.findall(r"^DEF (\w+) (\S+) (\d+)$", out, re.M)}
    for n, p in params.items():
        v, mode = defs.get(n, (None, None))
        check(v == p["default"], "%s: default %s (docs: %s)" % (n, v, p["default"]))
        check(mode == ("644" if p["rw"] else "444"), "%s: sysfs mode %s (docs: %s)" % (
            n, mode, "rw" if p["rw"] else "read-only"))
    # the script puts each rw value back to its documented default before
    # the next parameter's writes; refused writes must leave it there
    for n, v, st, now in re.findall(r"^SET (\w+) (\S+) (\d+) (\S+)$", out, re.M):
        was = defs.get(n, (None,))[0]
        check(st != "0" and now == was,
              "sysfs %s=%s refused (status %s), value stays %s (%s)" % (n, v, st, was, now))
    for n, v, st, now in re.findall(r"^SETOK (\w+) (\S+) (\d+) (\S+)$", out, re.M):
        check(st == "0" and now == v, "sysfs %s=%s taken (status %s, now %s)" % (n, v, st, now))
    for n, st, now in re.findall(r"^SETRO (\w+) (\d+) (\S+)$", out, re.M):
        check(st != "0" and now == params[n]["default"],
              "read-only %s: sysfs write refused (status %s), value %s" % (n, st, now))
    log = out.split("REFUSED-LOG", 1)[-1]
    for n, v, st in re.findall(r"^INS (\w+) (\S+) (\d+)$", out, re.M):
        check(st != "0", "insmod %s=%s refused (status %s)" % (n, v, st))
        p = params[n]
        if re.fullmatch(r"\d+", v) and int(v) < 1 << 32:
            lo, hi = p["range"][0], hi_of(p)
            check("%s=%s refused: outside %d..%d" % (n, v, lo, hi) in log,
                  "the kernel log says why %s=%s was refused" % (n, v))
    for n, v, st, now in re.findall(r"^INSOK (\w+) (\S+) (\d+) (\S+)$", out, re.M):
        check(st == "0" and now == v, "insmod %s=%s loads, reads back %s" % (n, v, now))
    # every line the script was meant to print is there
    for kind in ("SET", "SETOK", "SETRO", "INS", "INSOK"):
        want = sum(1 for x in sysfs + insmod if '"%s ' % kind in x)
        got = len(re.findall(r"^%s " % kind, out, re.M))
        check(got == want, "%d %s results of %d" % (got, kind, want))
    print("modparams: %s" % ("FAIL (%d)" % failures if failures else "PASS"), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (mclab.LabError, OSError) as e:
        print("FAIL: %s" % e, flush=True)
        sys.exit(1)
