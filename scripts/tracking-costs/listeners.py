"""N BCAST listener connections in one process, all drained continuously.

Usage: listeners.py PORT N PREFIX [NOLOOP]
Prints "ready" when all N have CLIENT TRACKING ON BCAST PREFIX <PREFIX>; then on each stdin line
prints one JSON line {"pushes": total push frames, "keys": total keys in them, "bytes": total bytes};
exits on stdin EOF. Counting is by substring on the raw stream (tail kept across recv boundaries).
"""
import json
import selectors
import socket
import sys

from resp3 import Conn

PUSH = b">2\r\n$10\r\ninvalidate\r\n"
KEY = b"\r\nns:op:"


def main():
    port, n, prefix = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    noloop = len(sys.argv) > 4 and sys.argv[4] == "NOLOOP"
    sel = selectors.DefaultSelector()
    state = {}
    for _ in range(n):
        c = Conn(port)
        args = ["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", prefix] + (["NOLOOP"] if noloop else [])
        c.call(*args)
        assert c.pos == len(c.buf)
        c.s.setblocking(False)
        st = {"tail": b"", "pushes": 0, "keys": 0, "bytes": 0}
        state[c.s] = st
        sel.register(c.s, selectors.EVENT_READ, st)
    sel.register(sys.stdin, selectors.EVENT_READ, None)
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            if key.data is None:
                line = sys.stdin.readline()
                if not line:
                    return
                tot = {f: sum(s[f] for s in state.values()) for f in ("pushes", "keys", "bytes")}
                print(json.dumps(tot), flush=True)
                continue
            st = key.data
            try:
                data = key.fileobj.recv(1 << 20)
            except BlockingIOError:
                continue
            if not data:
                sel.unregister(key.fileobj)
                continue
            st["bytes"] += len(data)
            old = st["tail"]
            buf = old + data
            # matches wholly inside the old tail were counted last time
            st["pushes"] += buf.count(PUSH) - old.count(PUSH)
            st["keys"] += buf.count(KEY) - old.count(KEY)
            st["tail"] = buf[-(len(PUSH) - 1):]


if __name__ == "__main__":
    main()
