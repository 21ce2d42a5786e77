"""Measurements 1 and 2: server memory for tracking 100k keys, default mode vs BCAST.

Run: taskset -c 1 python3 mem.py   (standard library only)
"""
import sys
from resp3 import Conn, Server, make_keys, load, read_all, settle

N = 100_000


def stats(c):
    i = c.info("stats")
    return {k: int(i[k]) for k in ("tracking_total_keys", "tracking_total_items", "tracking_total_prefixes")}


def memstats(c):
    m = c.call("MEMORY", "STATS")
    if isinstance(m, list):
        m = dict(zip(m[0::2], m[1::2]))
    return {k: m[k] for k in (b"overhead.total", b"dataset.bytes", b"clients.normal")}


def default_mode():
    srv = Server()
    try:
        adm = Conn(srv.port)
        keys = make_keys(N)
        load(adm, keys)
        print("config tracking-table-max-keys =", adm.call("CONFIG", "GET", "tracking-table-max-keys"))
        # control: same reads on a connection without tracking
        ctl = Conn(srv.port)
        m0 = settle(adm)
        read_all(ctl, keys)
        m1 = settle(adm)
        print("control (no tracking) read 100k: delta used_memory = %d B" % (m1 - m0))
        ms_before = memstats(adm)
        clients = []
        prev = m1
        for n in range(1, 5):
            t = Conn(srv.port)
            t.call("CLIENT", "TRACKING", "ON")
            base = settle(adm, 0.5)  # includes the new connection's own buffers
            read_all(t, keys)
            after = settle(adm)
            st = stats(adm)
            print("default mode, client %d read 100k: delta %d B (%.1f B/key), total since control %d B; %s"
                  % (n, after - base, (after - base) / N, after - m1, st))
            clients.append(t)
            prev = after
        ms_after = memstats(adm)
        print("MEMORY STATS before tracking:", ms_before)
        print("MEMORY STATS after 4 clients:", ms_after)
        # second read by the same client: no growth expected
        read_all(clients[0], keys)
        again = settle(adm)
        print("client 1 re-reads 100k: delta %d B; %s" % (again - prev, stats(adm)))
        # disconnect all tracking clients: cleanup is lazy
        for t in clients:
            t.close()
        gone = settle(adm)
        print("after closing all 4 tracking clients: delta %d B vs before; %s" % (gone - again, stats(adm)))
        # one write per key reclaims (no one to notify)
        load(adm, keys)
        w = settle(adm)
        print("after rewriting all keys: delta %d B; %s" % (w - gone, stats(adm)))
    finally:
        srv.stop()


def bcast_mode():
    srv = Server()
    try:
        adm = Conn(srv.port)
        keys = make_keys(N)
        load(adm, keys)
        rd = Conn(srv.port)
        m0 = settle(adm)
        lst = Conn(srv.port)
        lst.call("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "ns:")
        m1 = settle(adm)
        print("BCAST: listener connect+TRACKING ON: delta %d B; %s" % (m1 - m0, stats(adm)))
        read_all(rd, keys)
        m2 = settle(adm)
        print("BCAST: other conn read 100k: delta %d B (%.3f B/key); %s" % (m2 - m1, (m2 - m1) / N, stats(adm)))
        read_all(lst, keys)
        m3 = settle(adm)
        print("BCAST: listener itself read 100k: delta %d B; %s" % (m3 - m2, stats(adm)))
    finally:
        srv.stop()


if __name__ == "__main__":
    default_mode()
    bcast_mode()
    sys.stdout.flush()
