#!/usr/bin/env python3
"""relay-balloon: the balloon asks registered processes first, and waits
for them no longer than the deadline.

Three guests (1 GiB, memcoop.ko), each running `mct-relay client`, which
holds memory, registers it as its estimate and prints every request:

  answer  holds 700 MiB; the host takes 512 MiB.  The client must get a
          BALLOON request (reason 1) for a sane amount (more than the
          balloon could find free, at most its estimate and 512 MiB), free
          it, and the balloon must reach the target with no OOM kill.
  silent  a client that never answers (8 MiB) beside one that does
          (650 MiB), both asked; the host takes 450 MiB.  The round must
          end at the deadline (200 ms, plus scheduling slack) and the
          balloon must reach the target, with no OOM kill.
  die     a client that exits when its request arrives, with a 5 s
          deadline: the round must end when it dies, long before 5 s.

Exit 0 pass, 1 fail.
"""
import re
import sys
import time

import mclab

MEM = 1024
PAGE = 4096


last_guest_output = []


def stats(g, timeout=120):
    """The relay's counters: send "stats", wait for the client's STATS line.

    A guest that has just given up hundreds of MiB, on a loaded host, can
    take a while to run the client again: wait up to @timeout, asking
    again every 10 s (an extra line is harmless), and on failure keep the
    output as it was at the end, with the console's tail, for the log.
    """
    n = len(re.findall(r"^STATS ", g.output, re.M))
    t0 = time.monotonic()
    sent = 0
    while time.monotonic() - t0 < timeout:
        if time.monotonic() - t0 >= 10 * sent:
            g.send("stats")
            sent += 1
        found = re.findall(r"^STATS (.*)$", g.output, re.M)
        if len(found) > n:
            if sent > 1:
                print("stats: STATS after %.1f s (%d requests)" % (time.monotonic() - t0, sent),
                      flush=True)
            return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", found[-1])}
        time.sleep(0.1)
    last_guest_output[:] = [g.output + "\n" + g.console_tail(30)]
    raise mclab.LabError("no STATS line %d s after \"stats\" (sent %d times)" % (timeout, sent))


def check(cond, what, failures):
    print("%s: %s" % ("ok" if cond else "FAIL", what), flush=True)
    if not cond:
        failures.append(what)


def finish(g):
    g.send("quit")
    rc = g.wait_exit(timeout=120)
    return rc, g.console


def case_answer(failures):
    hold, take = 700, 512
    target = MEM - take
    with mclab.Guest(mem=MEM, driver="memcoop", modparams={"relay_deadline_ms": "3000"},
                     timeout=300, name="relay-answer") as g:
        g.start("mct-relay", "client", "answer", str(hold), "answer")
        g.wait_for(r"READY answer", timeout=60)
        t0 = time.monotonic()
        g.set_target(target)
        m = g.wait_for(r"REQ seq=\d+ reason=1 level=\d+ pages=(\d+) latency_us=(\d+) "
                       r"deadline_ms=(\d+)", timeout=60)
        pages = int(m.group(1))
        print("answer: BALLOON request for %d pages (%d MiB), delivered in %s us" % (
            pages, pages * PAGE >> 20, m.group(2)), flush=True)
        check(0 < pages <= min(hold, take) * 2**20 // PAGE,
              "request for %d pages within (0, min(estimate, take)]" % pages, failures)
        check(2900 <= int(m.group(3)) <= 3000, "deadline is relay_deadline_ms", failures)
        g.wait_for(r"ANSWERED seq=\d+ freed=%d" % pages, timeout=60)
        took = g.wait_actual(target, timeout=60)
        print("answer: actual reached %d MiB %.2f s after the command" % (
            target, time.monotonic() - t0), flush=True)
        check(took < 60, "balloon reached the target", failures)
        st = stats(g)
        check(st["balloon_calls"] >= 1 and st["rounds"] >= 1, "a balloon round ran", failures)
        check(st["balloon_freed"] >= pages, "the answer counted as freed for the balloon",
              failures)
        check(st["rounds_timed_out"] == 0, "the round ended with the answer, not the deadline",
              failures)
        rc, con = finish(g)
        check(rc == 0, "client exited 0", failures)
        check("Killed process" not in con, "no OOM kill", failures)


def case_silent(failures):
    # a silent client (8 MiB) beside an answering one (650 MiB), same class:
    # both are asked; the round must end at the deadline and the balloon
    # reach its target on what the answering one freed
    take = 450
    target = MEM - take
    with mclab.Guest(mem=MEM, driver="memcoop", timeout=300, name="relay-silent") as g:
        g.start("sh", "-c", "mct-relay client silent 8 silent & "
                "exec mct-relay client helper 650 answer")
        g.wait_for(r"READY silent", timeout=60)
        g.wait_for(r"READY helper", timeout=60)
        t0 = time.monotonic()
        g.set_target(target)
        m = g.wait_for(r"REQ seq=\d+ reason=1 level=\d+ pages=(\d+) latency_us=\d+ "
                       r"deadline_ms=(\d+) client=silent", timeout=60)
        check(150 <= int(m.group(2)) <= 200, "default deadline 200 ms", failures)
        g.wait_for(r"ANSWERED seq=\d+", timeout=60)
        took = g.wait_actual(target, timeout=60)
        print("silent: actual reached %d MiB %.2f s after the command" % (
            target, time.monotonic() - t0), flush=True)
        # each client prints its own requests in its own time (the helper's
        # before its ANSWERED, the silent one's waited for above), and the
        # balloon may run more than one round: each must have been asked
        reqs = re.findall(r"^REQ seq=\d+ reason=1 .* client=(\w+)$", g.output, re.M)
        check("silent" in reqs and "helper" in reqs,
              "both clients were asked (%d requests: %s)" % (len(reqs), " ".join(reqs)), failures)
        check(took < 60, "the balloon reached the target past the silent client", failures)
        st = stats(g)
        print("silent: last round %.1f ms, max %.1f ms, %d timed out, %d missed" % (
            st["last_round_ns"] / 1e6, st["max_round_ns"] / 1e6, st["rounds_timed_out"],
            st["missed"]), flush=True)
        check(st["rounds_timed_out"] >= 1, "the round hit the deadline", failures)
        check(200e6 <= st["max_round_ns"] <= 500e6,
              "no round waited much longer than the deadline (max %.1f ms)" %
              (st["max_round_ns"] / 1e6), failures)
        check(st["missed"] >= 1, "the unanswered request counted missed", failures)
        rc, con = finish(g)
        check(rc == 0, "client exited 0", failures)
        check("Killed process" not in con, "no OOM kill", failures)


def case_die(failures):
    hold, take = 500, 450
    with mclab.Guest(mem=MEM, driver="memcoop", modparams={"relay_deadline_ms": "5000"},
                     timeout=300, name="relay-die") as g:
        g.start("mct-relay", "client", "die", str(hold), "die")
        g.wait_for(r"READY die", timeout=60)
        g.set_target(MEM - take)
        g.wait_for(r"REQ seq=\d+ reason=1 .*\(dying\)", timeout=60)
        time.sleep(2)
        try:
            st = stats(g)
        except mclab.LabError:
            print(g.console_tail(30))
            raise
        print("die: round took %.1f ms (deadline 5000 ms), clients now %d" % (
            st["max_round_ns"] / 1e6, st["clients"]), flush=True)
        check(st["rounds"] >= 1 and st["max_round_ns"] < 2000e6,
              "the round ended when the client died, not at the 5 s deadline", failures)
        check(st["rounds_timed_out"] == 0, "no round timed out", failures)
        check(st["clients"] == 0, "the dead client is unregistered", failures)
        check(st["missed"] >= 1, "its request counted missed", failures)
        rc, con = finish(g)
        check(rc == 0, "client exited 0", failures)


def main():
    mclab.install_signal_handlers()
    failures = []
    cases = sys.argv[1:] or ["answer", "silent", "die"]
    for name in cases:
        try:
            {"answer": case_answer, "silent": case_silent, "die": case_die}[name](failures)
        except mclab.LabError as e:
            print("FAIL: %s: %s" % (name, e), flush=True)
            if last_guest_output:
                print("--- output ---\n" + last_guest_output[-1][-3000:], flush=True)
            failures.append(name)
    if failures:
        print("%d failed: %s" % (len(failures), "; ".join(failures)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
