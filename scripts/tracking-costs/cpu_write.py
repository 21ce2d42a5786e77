"""Measurement 4: server CPU per SET with no tracking, N BCAST listeners, non-matching keys,
and default mode with 4 clients that read the key before each write.

Run: taskset -c 1 python3 cpu_write.py [reps]
Server CPU = INFO cpu used_cpu_user+used_cpu_sys delta / number of SETs, read after every listener
has received every invalidation (BCAST pushes are built and written in beforeSleep, outside the
command timer, so commandstats usec_per_call does not see them; default-mode pushes are sent inside
SET and are in usec_per_call).
"""
import json
import os
import statistics
import subprocess
import sys
import time
from resp3 import Conn, Server, make_keys, load, cpu, cmdstat, encode

REPS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
HERE = os.path.dirname(os.path.abspath(__file__))
VAL = b"w" * 100


class Listeners:
    def __init__(self, port, n, noloop=False, prefix="ns:"):
        args = [sys.executable, os.path.join(HERE, "listeners.py"), str(port), str(n), prefix]
        if noloop:
            args.append("NOLOOP")
        self.p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.p.stdout.readline().strip() == "ready"

    def counts(self):
        self.p.stdin.write("c\n")
        self.p.stdin.flush()
        return json.loads(self.p.stdout.readline())

    def wait_keys(self, expected, timeout=60):
        end = time.monotonic() + timeout
        while True:
            c = self.counts()
            if c["keys"] >= expected or time.monotonic() > end:
                return c
            time.sleep(0.1)

    def stop(self):
        self.p.stdin.close()
        self.p.wait(10)


def do_sets(w, keys, depth):
    if depth == 1:
        for k in keys:
            w.s.sendall(encode(b"SET", k, VAL))
            assert w.read_reply() == b"OK"
    else:
        for i in range(0, len(keys), depth):
            r = w.pipeline([(b"SET", k, VAL) for k in keys[i:i + depth]])
            assert r[-1] == b"OK"


def bcast_run(n, depth, nsets, noloop=False, matching=True):
    srv = Server()
    try:
        adm = Conn(srv.port)
        keys = make_keys(nsets)
        if not matching:
            keys = [b"xx:" + k[3:] for k in keys]
        load(adm, keys)
        lst = Listeners(srv.port, n, noloop) if n else None
        w = Conn(srv.port)
        time.sleep(0.3)
        if lst:
            c_before = lst.counts()
        adm.call("CONFIG", "RESETSTAT")
        c0 = cpu(adm)
        t0 = time.monotonic()
        do_sets(w, keys, depth)
        wall = time.monotonic() - t0
        got = None
        if lst:
            exp = c_before["keys"] + (n * nsets if matching else 0)
            got = lst.wait_keys(exp) if matching else (time.sleep(0.5), lst.counts())[1]
            got = {k: got[k] - c_before[k] for k in got}
            assert got["keys"] == (n * nsets if matching else 0), got
        c1 = cpu(adm)
        st = cmdstat(adm, "set")
        assert st["calls"] == nsets
        if lst:
            lst.stop()
        return (c1[0] - c0[0]) / nsets * 1e6, st["usec_per_call"], nsets / wall, got
    finally:
        srv.stop()


def default_run(depth, ncycles, tracking=True):
    """4 clients GET k (each), then a writer SETs k; repeat. Reports cost per cycle (4 GET + 1 SET)."""
    srv = Server()
    try:
        adm = Conn(srv.port)
        keys = make_keys(ncycles)
        load(adm, keys)
        ts = [Conn(srv.port) for _ in range(4)]
        if tracking:
            for t in ts:
                t.call("CLIENT", "TRACKING", "ON")
        w = Conn(srv.port)
        time.sleep(0.3)
        adm.call("CONFIG", "RESETSTAT")
        c0 = cpu(adm)
        t0 = time.monotonic()
        for i in range(0, ncycles, depth):
            chunk = keys[i:i + depth]
            for t in ts:
                r = t.pipeline([(b"GET", k) for k in chunk])
                assert r[-1] is not None
            r = w.pipeline([(b"SET", k, VAL) for k in chunk])
            assert r[-1] == b"OK"
        wall = time.monotonic() - t0
        pushes = 0
        for t in ts:
            t.read_pushes(0.2)
            pushes += len(t.pushes)
        c1 = cpu(adm)
        st = cmdstat(adm, "set")
        gst = cmdstat(adm, "get")
        exp = 4 * ncycles if tracking else 0
        assert pushes == exp, (pushes, exp)
        return ((c1[0] - c0[0]) / ncycles * 1e6, st["usec_per_call"], ncycles / wall,
                {"pushes": pushes, "get_usec_per_call": gst["usec_per_call"]})
    finally:
        srv.stop()


def report(name, depth, fn):
    res = [fn() for _ in range(REPS)]
    cpus = [r[0] for r in res]
    print("%-46s depth=%-3d cpu/op us: median %7.3f [%7.3f..%7.3f]  SET usec_per_call %.3f  ops/s %6.0f  %s"
          % (name, depth, statistics.median(cpus), min(cpus), max(cpus),
             statistics.median(r[1] for r in res), statistics.median(r[2] for r in res), res[-1][3]),
          flush=True)


if __name__ == "__main__":
    only = sys.argv[2] if len(sys.argv) > 2 else ""
    for depth, nsets in ((1, 20_000), (100, 100_000)):
        if only in ("", "bcast"):
            report("(a) no tracking", depth, lambda: bcast_run(0, depth, nsets))
            for n in (1, 4, 16, 64):
                report("(b) BCAST %d listeners, matching key" % n, depth, lambda: bcast_run(n, depth, nsets))
            report("(b') BCAST 16 listeners NOLOOP, matching key", depth,
                   lambda: bcast_run(16, depth, nsets, noloop=True))
            report("(c) BCAST 16 listeners, NON-matching key", depth,
                   lambda: bcast_run(16, depth, nsets, matching=False))
        if only in ("", "default"):
            report("(d0) cycle 4xGET+SET, no tracking (per cycle)", depth, lambda: default_run(depth, nsets // 5, False))
            report("(d) cycle 4xGET+SET, default mode (per cycle)", depth, lambda: default_run(depth, nsets // 5, True))
