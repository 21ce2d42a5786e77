"""Measurement 5: what each mode misses or over-sends (behaviour checks, not timings except expiry).

Run: taskset -c 1 python3 misses.py
"""
import socket
import time
from resp3 import Conn, Server, make_keys, load

K = b"ns:op:" + b"a" * 64


def pushes(c, t=0.3):
    return [p for _, p in c.read_pushes(t)]


def raw(c, t=0.3):
    """Raw bytes waiting on the socket (buffer must be empty)."""
    assert c.pos == len(c.buf)
    c.s.settimeout(t)
    out = b""
    try:
        while True:
            d = c.s.recv(65536)
            if not d:
                break
            out += d
    except socket.timeout:
        pass
    c.s.settimeout(None)
    return out


def bcast(port, *extra):
    c = Conn(port)
    c.call("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "ns:", *extra)
    return c


def default(port, *extra):
    c = Conn(port)
    c.call("CLIENT", "TRACKING", "ON", *extra)
    return c


def main():
    srv = Server()
    p = srv.port
    try:
        w = Conn(p)
        w.call("SET", K, "v")
        # 1. default mode: reads on a connection without tracking are not remembered
        t = default(p)
        plain = Conn(p)
        plain.call("GET", K)
        w.call("SET", K, "v2")
        print("[default] key read only on a non-tracking conn, then written: pushes to tracker =", pushes(t))
        # 2. read once -> invalidated once -> forgotten until read again
        t.call("GET", K)
        w.call("SET", K, "v3")
        first = pushes(t)
        w.call("SET", K, "v4")
        second = pushes(t)
        t.call("GET", K)
        w.call("SET", K, "v5")
        third = pushes(t)
        print("[default] read, write, write, read, write: pushes = %s | %s | %s" % (first, second, third))
        # 2b. REDIRECT: reads on a data conn tracked, pushes go to the dedicated conn
        d = Conn(p)
        lid = t.call("CLIENT", "ID")
        d.call("CLIENT", "TRACKING", "ON", "REDIRECT", lid)
        d.call("GET", K)
        w.call("SET", K, "v6")
        print("[default] data conn with REDIRECT to tracker, read then write: pushes at tracker =", pushes(t),
              "at data conn =", pushes(d, 0.1))
        t.close()
        time.sleep(0.1)
        d.call("GET", K)
        w.call("SET", K, "v7")
        print("[default] tracker closed, data conn read then write: push at data conn =", pushes(d))
        d.close()
        plain.close()

        # 3. tracking table limit: evicts keys and sends invalidations for unmodified keys
        w.call("CONFIG", "SET", "tracking-table-max-keys", "1000")
        keys = make_keys(2000, "lim")
        load(w, keys)
        t = default(p)
        for i in range(0, 2000, 100):
            t.pipeline([("GET", k) for k in keys[i:i + 100]])
        got_during = len(t.pushes)
        for _ in range(20):
            w.call("PING")  # eviction runs in processCommand, up to 100*(n) keys per command
        after = pushes(t)
        st = w.info("stats")
        print("[default] tracking-table-max-keys=1000, read 2000 unmodified keys: %d pushes while reading, "
              "%d after (%d keys in them); tracking_total_keys now %s"
              % (got_during, len(after), sum(len(x[1]) for x in after), st["tracking_total_keys"]))
        t.close()
        w.call("CONFIG", "SET", "tracking-table-max-keys", "1000000")

        # 4. FLUSHDB / FLUSHALL push shape, both modes; also flush of another DB
        t = default(p)
        t.call("GET", K)
        b = bcast(p)
        w.call("FLUSHDB")
        print("[both] FLUSHDB: default conn raw %r | bcast conn raw %r" % (raw(t), raw(b)))
        w.call("SELECT", "1")
        w.call("FLUSHDB")
        print("[both] FLUSHDB of db 1 (trackers use db 0): default raw %r | bcast raw %r" % (raw(t), raw(b)))
        w.call("FLUSHALL")
        print("[both] FLUSHALL: default raw %r | bcast raw %r" % (raw(t), raw(b)))
        # keys are not per-db: a write to the same name in db 1 invalidates db 0 readers
        w.call("SELECT", "0")
        w.call("SET", K, "v")
        raw(b)
        t.call("GET", K)
        w.call("SELECT", "1")
        w.call("SET", K, "other-db")
        print("[both] SET of the same key name in db 1: default %s | bcast %s" % (pushes(t), pushes(b)))
        w.call("SELECT", "0")

        # 5. over-sends: same value, EXPIRE (TTL only), DEL of missing key, non-matching key
        w.call("SET", K, "same")
        pushes(b)
        w.call("SET", K, "same")
        same = pushes(b)
        w.call("EXPIRE", K, 100)
        exp = pushes(b)
        w.call("DEL", b"ns:missing")
        dl = pushes(b)
        w.call("SET", b"other:k", "x")
        other = pushes(b)
        print("[bcast] SET same value: %s | EXPIRE only: %s | DEL of missing key: %s | non-matching key: %s"
              % (same, exp, dl, other))

        # 6. expiry: does an expiring key push without any read, and how late (active vs lazy expiry)
        b2 = bcast(p)
        t2 = default(p)
        delays = []
        for i in range(5):
            k = b"ns:exp:%d" % i
            t_set = time.monotonic()
            w.call("SET", k, "v", "PX", 200)
            t2.call("GET", k)
            own = b2.read_pushes(0.05)  # the SET's own invalidation
            assert len(own) == 1, own
            got = b2.read_pushes(3)
            delays.append(round(got[0][0] - t_set - 0.2, 3) if got else None)
        t2.read_pushes(0.3)
        dflt = [x for _, x in t2.pushes if x[1] and x[1][0].startswith(b"ns:exp:")]
        print("[bcast] SET PX 200, no read: push delay after expiry (s) =", delays,
              "| default-mode reader (read each key once) got", len(dflt), "pushes for the same 5 keys")
        # with 100k long-TTL keys beside it, active expiry rarely samples the short one
        big = make_keys(100_000, "ttl")
        for i in range(0, len(big), 1000):
            w.pipeline([("SET", k, "v", "EX", 3600) for k in big[i:i + 1000]])
        pushes(b2, 1.0)  # drain the pushes of the load itself
        k = b"ns:exp:big"
        w.call("SET", k, "v", "PX", 200)
        pushes(b2, 0.05)
        t0 = time.monotonic()
        got = b2.read_pushes(10)
        print("[bcast] same with 100k other keys having EX 3600: push within 10 s? %s" %
              ("yes after %.2f s" % (got[0][0] - t0) if got else "NO"))
        w.call("GET", k)
        got = b2.read_pushes(0.5)
        print("[bcast] then a GET of the expired key (lazy expiry): push = %s" % ([x[1] for x in got]))
        w.call("FLUSHALL")
        pushes(b2)
        pushes(b)
        b2.close()
        t2.close()
        t.close()

        # 7. eviction under maxmemory sends invalidations for evicted keys
        load(w, make_keys(5000, "ev"))
        pushes(b, 0.5)
        used = int(w.info("memory")["used_memory"])
        w.call("CONFIG", "SET", "maxmemory", str(used + 200_000))
        w.call("CONFIG", "SET", "maxmemory-policy", "allkeys-random")
        filler = [b"xx:" + k[3:] for k in make_keys(20000, "fill")]
        for i in range(0, len(filler), 100):
            w.pipeline([("SET", k, b"f" * 100) for k in filler[i:i + 100]])
        w.call("CONFIG", "SET", "maxmemory", "0")  # stop evicting before counting
        got = pushes(b, 0.5)
        ns_left = sum(1 for k in make_keys(5000, "ev") if w.call("EXISTS", k))
        print("[bcast] maxmemory eviction: evicted_keys=%s, ns: keys gone=%d, invalidated keys pushed=%d"
              % (w.info("stats")["evicted_keys"], 5000 - ns_left, sum(len(x[1]) for x in got)))
        w.call("CONFIG", "SET", "maxmemory", "0")
        w.call("FLUSHALL")
        pushes(b)
        b.close()

        # 8. NOLOOP
        for mode, mk in (("bcast", bcast), ("default", default)):
            for opt in ((), ("NOLOOP",)):
                c = mk(p, *opt)
                c.call("GET", K)
                w.call("SET", K, "from-other-conn")
                other_conn = pushes(c)
                c.call("GET", K)
                c.call("SET", K, "from-itself")
                own = pushes(c)
                print("[%s %s] write from another conn -> %s ; write from the tracking conn itself -> %s"
                      % (mode, opt[0] if opt else "no NOLOOP", other_conn, own))
                c.close()
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
