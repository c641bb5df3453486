#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Run the fuzz harnesses: replay the corpus, or fuzz with AFL++.

usage: fuzz.py replay HARNESS CORPUSDIR
       fuzz.py afl SECONDS NAME=HARNESS:CORPUSDIR...

replay  runs the harness (the ordinary build, also under ASan in
        build-asan) on every file of the corpus: no invariant broken, no
        sanitizer report.
afl     runs afl-fuzz on each AFL++-instrumented harness for SECONDS, one
        after the other, from its corpus, and fails on any crash or hang,
        or on a fuzzer that did not run (fewer than MIN_EXECS executions).
        Crashing and hanging inputs are copied to
        $MCLAB_BUILDDIR/fuzz-findings/NAME/ (or ./fuzz-findings) so they
        can be replayed and added to the corpus.

Exit 0 pass, 1 fail.
"""
import os
import shutil
import subprocess
import sys
import tempfile

MIN_EXECS = 2000	# a 20 s run does 25k..100k on a loaded 2-core host


def replay(harness, corpus):
    files = sorted(os.path.join(corpus, f) for f in os.listdir(corpus))
    if not files:
        print("FAIL: empty corpus %s" % corpus)
        return 1
    r = subprocess.run([harness] + files, capture_output=True, text=True,
                       timeout=300)
    print(r.stdout + r.stderr[-4000:])
    if r.returncode != 0 or ("%d inputs replayed" % len(files)) not in r.stdout:
        print("FAIL: %s on %s: exit %d" % (harness, corpus, r.returncode))
        return 1
    print("ok: %d inputs of %s replayed" % (len(files), corpus))
    return 0


def stats(path):
    out = {}
    for line in open(path):
        k, _, v = line.partition(":")
        out[k.strip()] = v.strip()
    return out


def afl(seconds, specs):
    afl_fuzz = shutil.which("afl-fuzz")
    if afl_fuzz is None:
        print("FAIL: afl-fuzz not found: install afl++ (.ci/deps.sh)")
        return 1
    findings = os.path.join(os.environ.get("MCLAB_BUILDDIR", "."),
                            "fuzz-findings")
    env = dict(os.environ, AFL_SKIP_CPUFREQ="1", AFL_NO_AFFINITY="1",
               AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES="1", AFL_NO_UI="1",
               AFL_FAST_CAL="1")
    fails = 0
    for spec in specs:
        name, _, rest = spec.partition("=")
        harness, _, corpus = rest.partition(":")
        if not os.access(harness, os.X_OK):
            print("FAIL: %s: no AFL++ harness %s (afl-cc missing at "
                  "meson setup?)" % (name, harness))
            fails += 1
            continue
        out = tempfile.mkdtemp(prefix="afl-%s-" % name)
        try:
            # -t: a hang is an input that takes over 3 s (they take
            # microseconds); -m none: ASan maps terabytes of shadow
            r = subprocess.run([afl_fuzz, "-i", corpus, "-o", out,
                                "-m", "none", "-t", "3000",
                                "-V", str(seconds), "--", harness],
                               env=env, capture_output=True, text=True,
                               timeout=seconds + 120)
            sf = os.path.join(out, "default", "fuzzer_stats")
            if r.returncode != 0 or not os.path.exists(sf):
                print(r.stdout[-3000:] + r.stderr[-3000:])
                print("FAIL: %s: afl-fuzz exit %d" % (name, r.returncode))
                fails += 1
                continue
            st = stats(sf)
            execs = int(st.get("execs_done", "0"))
            crashes = int(st.get("saved_crashes", st.get("unique_crashes",
                                                         "0")))
            hangs = int(st.get("saved_hangs", st.get("unique_hangs", "0")))
            print("%s: %d execs in %s s (%s/s), corpus %s, edges %s, "
                  "%d crashes, %d hangs" %
                  (name, execs, seconds, st.get("execs_per_sec"),
                   st.get("corpus_count"), st.get("bitmap_cvg"),
                   crashes, hangs), flush=True)
            if crashes or hangs:
                dst = os.path.join(findings, name)
                os.makedirs(dst, exist_ok=True)
                for sub in ("crashes", "hangs"):
                    d = os.path.join(out, "default", sub)
                    for f in os.listdir(d):
                        if f.startswith("id:"):
                            shutil.copy(os.path.join(d, f),
                                        os.path.join(dst, sub + "-" +
                                                     f.replace(":", "_")))
                print("FAIL: %s: crashes or hangs, inputs in %s" %
                      (name, dst))
                fails += 1
            elif execs < MIN_EXECS:
                print("FAIL: %s: only %d executions" % (name, execs))
                fails += 1
            else:
                print("ok: %s: no crash, no hang" % name)
        finally:
            shutil.rmtree(out, ignore_errors=True)
    return 1 if fails else 0


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "replay":
        return replay(sys.argv[2], sys.argv[3])
    if len(sys.argv) >= 4 and sys.argv[1] == "afl":
        return afl(int(sys.argv[2]), sys.argv[3:])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
