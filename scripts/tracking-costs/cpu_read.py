"""Measurement 3: server CPU per GET with no tracking, default-mode tracking, BCAST listeners present.

Run: taskset -c 1 python3 cpu_read.py [reps]
Server CPU = INFO cpu used_cpu_user+used_cpu_sys delta / number of GETs (includes syscalls, event
loop, and trackingRememberKeys, which runs after call() stops the command timer and so is NOT in
commandstats usec_per_call). usec_per_call is reported too.
"""
import statistics
import sys
import time
from resp3 import Conn, Server, make_keys, load, cpu, cmdstat, VALUE

N = 100_000
REPS = int(sys.argv[1]) if len(sys.argv) > 1 else 3


def run_reads(adm, rd, keys, depth):
    adm.call("CONFIG", "RESETSTAT")
    c0 = cpu(adm)
    t0 = time.monotonic()
    if depth == 1:
        for k in keys:
            rd.s.sendall(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(k), k))
            assert rd.read_reply() == VALUE
    else:
        for i in range(0, len(keys), depth):
            r = rd.pipeline([("GET", k) for k in keys[i:i + depth]])
            assert r[-1] == VALUE
    wall = time.monotonic() - t0
    c1 = cpu(adm)
    st = cmdstat(adm, "get")
    assert st["calls"] == len(keys), st
    return (c1[0] - c0[0]) / len(keys) * 1e6, st["usec_per_call"], len(keys) / wall


def scenario(name, depth, setup):
    """setup(srv, adm) -> (reader_conn, cleanup, keys_fresh_each_rep)."""
    res = []
    for rep in range(REPS):
        srv = Server()
        try:
            adm = Conn(srv.port)
            keys = make_keys(N)
            load(adm, keys)
            rd, extra = setup(srv, adm, keys)
            time.sleep(0.3)
            res.append(run_reads(adm, rd, keys, depth))
            if extra:
                extra(adm)
        finally:
            srv.stop()
    cpus = [r[0] for r in res]
    upc = [r[1] for r in res]
    tput = [r[2] for r in res]
    print("%-44s depth=%-3d cpu/GET us: median %.3f [%.3f..%.3f]  usec_per_call %.3f  client-bound ops/s %.0f"
          % (name, depth, statistics.median(cpus), min(cpus), max(cpus), statistics.median(upc),
             statistics.median(tput)), flush=True)


def no_tracking(srv, adm, keys):
    return Conn(srv.port), None


def default_first(srv, adm, keys):
    rd = Conn(srv.port)
    rd.call("CLIENT", "TRACKING", "ON")

    def check(a):
        assert int(a.info("stats")["tracking_total_keys"]) == N
    return rd, check


def default_reread(srv, adm, keys):
    rd = Conn(srv.port)
    rd.call("CLIENT", "TRACKING", "ON")
    for i in range(0, len(keys), 1000):
        rd.pipeline([("GET", k) for k in keys[i:i + 1000]])
    return rd, None


def bcast(n):
    def setup(srv, adm, keys):
        ls = []
        for _ in range(n):
            c = Conn(srv.port)
            c.call("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "ns:")
            ls.append(c)

        def check(a):
            got = sum(len(c.read_pushes(0.05)) for c in ls)
            assert got == 0, "BCAST listeners got %d pushes from reads" % got
        return Conn(srv.port), check
    return setup


if __name__ == "__main__":
    # idle server CPU (serverCron etc.) for scale
    srv = Server()
    try:
        adm = Conn(srv.port)
        c0 = cpu(adm)
        time.sleep(3)
        c1 = cpu(adm)
        print("idle server cpu: %.2f ms/s" % ((c1[0] - c0[0]) / 3 * 1e3))
    finally:
        srv.stop()
    for depth in (100, 1):
        scenario("(a) no tracking", depth, no_tracking)
        scenario("(b) default mode, first read (table insert)", depth, default_first)
        scenario("(b) default mode, re-read (already tracked)", depth, default_reread)
        for n in (1, 4, 16):
            scenario("(c) BCAST, %d listeners present" % n, depth, bcast(n))
