"""Minimal RESP3 client + redis-server launcher for the CLIENT TRACKING cost measurements.

Own parser (not redis-py) so push frames are seen exactly as the server sends them.
Every server is started on a free 127.0.0.1 port, pinned to core 1, no persistence,
in its own temp dir, and killed by the caller (Server.stop()).
"""
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time


class Push(list):
    """A RESP3 '>' push frame."""


class RespError(Exception):
    pass


def encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if not isinstance(a, bytes):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, port, resp3=True):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.pos = 0
        self.pushes = []  # every push frame seen, with arrival time
        if resp3:
            self.call("HELLO", "3")

    def close(self):
        self.s.close()

    def _fill(self):
        data = self.s.recv(1 << 20)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buf = self.buf[self.pos:] + data
        self.pos = 0

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n", self.pos)
            if i >= 0:
                line = self.buf[self.pos:i]
                self.pos = i + 2
                return line
            self._fill()

    def _bytes(self, n):
        while len(self.buf) - self.pos < n + 2:
            self._fill()
        b = self.buf[self.pos:self.pos + n]
        self.pos += n + 2
        return b

    def _parse(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t in (b"+",):
            return rest
        if t in (b"-", b"!"):
            return RespError(rest.decode() if t == b"-" else self._bytes(int(rest)).decode())
        if t == b":":
            return int(rest)
        if t in (b"$", b"="):
            n = int(rest)
            if n < 0:
                return None
            b = self._bytes(n)
            return b[4:] if t == b"=" else b
        if t in (b"*", b">", b"~"):
            n = int(rest)
            if n < 0:
                return None
            items = [self._parse() for _ in range(n)]
            return Push(items) if t == b">" else items
        if t == b"%":
            n = int(rest)
            d = {}
            for _ in range(n):
                k = self._parse()
                d[k] = self._parse()
            return d
        if t == b"_":
            return None
        if t == b",":
            return float(rest)
        if t == b"#":
            return rest == b"t"
        if t == b"(":
            return int(rest)
        raise ValueError("unknown RESP type %r" % line)

    def read_reply(self):
        """Next non-push reply; pushes met on the way are recorded."""
        while True:
            v = self._parse()
            if isinstance(v, Push):
                self.pushes.append((time.monotonic(), v))
                continue
            return v

    def read_pushes(self, timeout):
        """Collect push frames arriving within `timeout` seconds (non-reply traffic only)."""
        end = time.monotonic() + timeout
        got = []
        while True:
            # drain what is already buffered
            while self.pos < len(self.buf):
                v = self._parse()
                assert isinstance(v, Push), v
                self.pushes.append((time.monotonic(), v))
                got.append((time.monotonic(), v))
            left = end - time.monotonic()
            if left <= 0:
                return got
            self.s.settimeout(left)
            try:
                self._fill()
            except socket.timeout:
                return got
            finally:
                self.s.settimeout(None)

    def call(self, *args):
        self.s.sendall(encode(*args))
        v = self.read_reply()
        if isinstance(v, RespError):
            raise v
        return v

    def pipeline(self, cmds):
        self.s.sendall(b"".join(encode(*c) for c in cmds))
        return [self.read_reply() for _ in cmds]

    def info(self, section="all"):
        raw = self.call("INFO", section)
        d = {}
        for line in raw.decode().splitlines():
            if ":" in line and not line.startswith("#"):
                k, v = line.split(":", 1)
                d[k] = v
        return d


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Server:
    def __init__(self, *extra):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="costs-redis-")
        self.log = open(os.path.join(self.dir, "redis.log"), "w")
        self.p = subprocess.Popen(
            ["taskset", "-c", "1", "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir, *extra],
            stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(200):
            try:
                c = Conn(self.port, resp3=False)
                c.call("PING")
                c.close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        self.p.terminate()
        self.p.wait(10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def make_keys(n, salt=""):
    """cachekit-shaped keys: ns:op:<64 lowercase hex> (70 bytes)."""
    return [("ns:op:" + hashlib.sha256(("%s%d" % (salt, i)).encode()).hexdigest()).encode()
            for i in range(n)]


VALUE = b"v" * 100


def load(conn, keys, batch=1000):
    for i in range(0, len(keys), batch):
        conn.pipeline([("SET", k, VALUE) for k in keys[i:i + batch]])


def read_all(conn, keys, batch=1000):
    for i in range(0, len(keys), batch):
        r = conn.pipeline([("GET", k) for k in keys[i:i + batch]])
        assert r[0] == VALUE, r[0]


def settle(conn, seconds=1.5):
    time.sleep(seconds)
    return int(conn.info("memory")["used_memory"])


def cpu(conn):
    i = conn.info("cpu")
    return float(i["used_cpu_user"]) + float(i["used_cpu_sys"]), float(i["used_cpu_user"]), float(i["used_cpu_sys"])


def cmdstat(conn, cmd):
    i = conn.info("commandstats")
    v = i.get("cmdstat_" + cmd)
    if not v:
        return None
    return dict((kv.split("=")[0], float(kv.split("=")[1])) for kv in v.split(","))
