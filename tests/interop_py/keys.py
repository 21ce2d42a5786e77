"""Seeded random argument lists, each with cachekit-py's interop/v1 key.

argv: SEED COUNT. stdout: one JSON list of
  {"namespace": ..., "operation": ..., "args": [tagged], "key": ...}.
Dict keys keep their (random) insertion order in the JSON, so the reader's
canonical sorting is what gets compared.
"""

import datetime as dt
import json
import random
import sys
import uuid

from tagged import tag

from cachekit.interop import generate_interop_key

# Multi-byte UTF-8 of each width, and a character JSON escapes as a
# surrogate pair.
ALPHABET = "abcxyz019 _-.:/\\\"'\n\té☃日本😀"
SEGMENT_FIRST = "abcdefghijklmnopqrstuvwxyz0123456789"
SEGMENT_REST = SEGMENT_FIRST + "._-"


def segment(rng):
    while True:
        text = rng.choice(SEGMENT_FIRST) + "".join(rng.choice(SEGMENT_REST) for _ in range(rng.randrange(0, 12)))
        if ".." not in text and text not in ("ns", "nsapi"):
            return text


def text(rng):
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 10)))


def integer(rng):
    return rng.choice(
        [
            rng.randrange(-40, 140),  # fixints and their edges
            rng.randrange(-(2**15), 2**16),
            rng.randrange(-(2**31), 2**32),
            rng.randrange(-(2**63), 2**64),  # the whole interop range
            rng.choice([-(2**63), 2**63 - 1, 2**63, 2**64 - 1, -33, -32, 127, 128, 255, 256]),
        ]
    )


def floating(rng):
    return rng.choice(
        [
            rng.uniform(-1e6, 1e6),
            float(rng.randrange(-1000, 1000)),  # integral: hashes as an int
            rng.choice([0.0, -0.0, 0.5, 1e300, -1e-300, 5e-324, 2.0**63, 2.0**64, -(2.0**63), 1e20]),
            rng.random() * 10 ** rng.randrange(-20, 20),
        ]
    )


def timestamp(rng):
    offset = dt.timedelta(minutes=rng.randrange(-14 * 60, 14 * 60 + 1, 15))
    at = dt.datetime(1900, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(
        seconds=rng.randrange(0, 200 * 365 * 86400), microseconds=rng.choice([0, rng.randrange(0, 10**6)])
    )
    return at.astimezone(dt.timezone(offset))


def scalar(rng):
    kind = rng.randrange(9)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return integer(rng)
    if kind == 3:
        return floating(rng)
    if kind == 4:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 12)))
    if kind == 5:
        return timestamp(rng)
    if kind == 6:
        return uuid.UUID(int=rng.getrandbits(128))
    return text(rng)


def value(rng, depth):
    kind = rng.randrange(10) if depth < 3 else 0
    if kind == 7:
        return [value(rng, depth + 1) for _ in range(rng.randrange(0, 5))]
    if kind == 8:
        # Keys that are not all "$..." when alone: one-entry objects with a
        # "$" key are tags in the JSON.
        return {"k" + text(rng): value(rng, depth + 1) for _ in range(rng.randrange(0, 5))}
    if kind == 9:
        return {rng.choice([integer(rng), text(rng), None, rng.random() < 0.5]) for _ in range(rng.randrange(0, 5))}
    return scalar(rng)


def main():
    seed, count = int(sys.argv[1]), int(sys.argv[2])
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        namespace, operation = segment(rng), segment(rng)
        args = [value(rng, 0) for _ in range(rng.randrange(0, 6))]
        key = generate_interop_key(namespace, operation, args)
        out.append({"namespace": namespace, "operation": operation, "args": tag(args), "key": key})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
