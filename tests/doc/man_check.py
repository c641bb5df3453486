#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""The man pages: complete against the code, clean to render, installed.

usage: man_check.py SRCDIR BUILDDIR

- every keyword config_parse_string() knows (strcmp in host-agent/parse.c,
  global and guest-block) is a tagged entry in memcoopd.conf(5);
- every memcoopctl command of its command table, every `set` key and
  every `ksm` argument, and every long option, is an entry in
  memcoopctl(8); every memcoopd long option in memcoopd(8);
- every function declared in libmemcoop's public headers is in the
  SYNOPSIS of libmemcoop(3) and described ("name ()") in its body;
- `groff -man -ww -z` and `man -l` render each page without a warning;
- every keyword of guest-driver/guestd/parse.c is an entry in memcoop-guestd(8);
- meson installs the pages (meson introspect --installed).

Exit 0 pass, 1 fail.
"""
import json
import os
import re
import subprocess
import sys

PAGES = {"memcoopd.8", "memcoopctl.8", "memcoopd.conf.5", "libmemcoop.3",
         "memcoop-guestd.8"}
fails = []


def check(cond, what):
    if cond:
        print("ok: " + what, flush=True)
    else:
        print("FAIL: " + what, flush=True)
        fails.append(what)


def unescape(s):
    return s.replace("\\-", "-").replace("\\(dq", '"').replace('"', "")


def tags(roff):
    """First word of each .TP/.TQ tag line (macros and quotes removed)."""
    out = []
    lines = roff.splitlines()
    for i, line in enumerate(lines):
        if line.strip() in (".TP", ".TQ") and i + 1 < len(lines):
            t = lines[i + 1]
            t = re.sub(r"^\.(B|I|BI|BR|IR|RB|IB)\s+", "", t)
            words = unescape(t).split()
            if words:
                out.append((words[0], unescape(t)))
    return out


def keywords(parse_c):
    """The keywords a config parser compares its first token with."""
    return set(re.findall(r'strcmp\((?:k|tok\[0\]), "([a-z][a-z-]*)"\)', parse_c))


def main():
    src, build = sys.argv[1], sys.argv[2]
    mandir = os.path.join(src, "docs", "man")
    page = {p: open(os.path.join(mandir, p)).read() for p in PAGES}

    parse = open(os.path.join(src, "host-agent", "parse.c")).read()
    kws = keywords(parse)
    check(len(kws) >= 30, "%d keywords found in parse.c" % len(kws))
    conf_tags = {t for t, _ in tags(page["memcoopd.conf.5"])}
    conf_tags |= set(re.findall(r'^\.BI (guest) ', page["memcoopd.conf.5"],
                                re.M))
    missing = sorted(kws - conf_tags)
    check(not missing, "memcoopd.conf(5) documents every keyword: missing %s"
          % missing)

    gparse = open(os.path.join(src, "guest-driver", "guestd", "parse.c")).read()
    gkws = keywords(gparse)
    check(len(gkws) >= 15, "%d keywords found in guestd/parse.c" % len(gkws))
    gtags = {t for t, _ in tags(page["memcoop-guestd.8"])}
    gtags |= set(re.findall(r'^\.BI "(app) ', page["memcoop-guestd.8"], re.M))
    check(not gkws - gtags, "memcoop-guestd(8) documents every keyword: missing %s"
          % sorted(gkws - gtags))

    ctl = open(os.path.join(src, "host-agent", "memcoopctl.c")).read()
    cmds = re.findall(r'\{ "([a-z-]+)",\s+ctl_[a-z_]+,\s+"([^"]*)"', ctl)
    check(len(cmds) >= 4, "%d memcoopctl commands found" % len(cmds))
    ctl_tags = tags(page["memcoopctl.8"])
    names = {t for t, _ in ctl_tags}
    check(not [c for c, _ in cmds if c not in names],
          "memcoopctl(8) has an entry for every command: missing %s" %
          [c for c, _ in cmds if c not in names])
    keys = re.search(r"keys\[\] = \{([^}]*)\}", ctl)
    keys = re.findall(r'"([a-z]+)"', keys.group(1)) if keys else []
    check(len(keys) >= 5, "%d set keys found" % len(keys))
    set_keys = {full.split()[2] for t, full in ctl_tags
                if t == "set" and len(full.split()) > 2}
    check(not set(keys) - set_keys, "every `set` key has its entry: "
          "missing %s" % sorted(set(keys) - set_keys))
    ksm_args = dict(cmds).get("ksm", "").split("|")
    ksm_doc = " ".join(full for t, full in ctl_tags if t == "ksm")
    check(all(re.search(r"\b%s\b" % a, ksm_doc) for a in ksm_args),
          "every `ksm` argument (%s) has its entry" % ksm_args)

    for prog, pg in (("memcoopctl.c", "memcoopctl.8"),
                     ("memcoopd.c", "memcoopd.8")):
        text = open(os.path.join(src, "host-agent", prog)).read()
        opts = re.findall(r'\{ "([a-z-]+)",\s+(?:no|required)_argument', text)
        documented = {re.sub(r",$", "", w) for _, full in tags(page[pg])
                      for w in full.split()}
        missing = ["--" + o for o in opts if "--" + o not in documented]
        check(opts and not missing, "%s: every option of %s (%d): missing %s"
              % (pg, prog, len(opts), missing))

    decl = set()
    for h in ("libmemcoop.h", "memcoop_relay.h", "memcoop_vrange.h",
              "memcoop_wtrack.h"):
        text = open(os.path.join(src, "guest-driver", "lib", h)).read()
        text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        decl |= set(re.findall(r"\b(memcoop_[a-z_]+)\(", text))
    check(len(decl) >= 35, "%d libmemcoop functions declared" % len(decl))
    lib = page["libmemcoop.3"]
    syn = lib[lib.index(".SH SYNOPSIS"):lib.index(".SH DESCRIPTION")]
    body = lib[lib.index(".SH DESCRIPTION"):]
    check(not [f for f in decl if f + "(" not in syn],
          "libmemcoop(3) SYNOPSIS has every function: missing %s" %
          sorted(f for f in decl if f + "(" not in syn))
    undescribed = sorted(f for f in decl
                         if not re.search(r"\b%s \(\)" % f, body))
    check(not undescribed, "libmemcoop(3) describes every function: "
          "missing %s" % undescribed)

    env = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80")
    for p in sorted(PAGES):
        path = os.path.join(mandir, p)
        r = subprocess.run(["groff", "-man", "-ww", "-z", path], env=env,
                           capture_output=True, text=True)
        check(r.returncode == 0 and not r.stderr.strip(),
              "groff -man -ww -z %s: no warning %s" % (p, r.stderr.strip()))
        r = subprocess.run(["man", "--warnings", "-l", path], env=env,
                           capture_output=True, text=True)
        check(r.returncode == 0 and not r.stderr.strip() and
              "NAME" in r.stdout and len(r.stdout.splitlines()) > 20,
              "man -l %s renders, no warning %s" % (p, r.stderr.strip()))

    r = subprocess.run(["meson", "introspect", "--installed", build],
                       capture_output=True, text=True)
    inst = json.loads(r.stdout) if r.returncode == 0 else {}
    got = {os.path.basename(v) for v in inst.values()
           if "/man/man" in v}
    check(PAGES <= got, "meson installs the man pages: %s" % sorted(got))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
