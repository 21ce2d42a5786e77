"""Tagged JSON, as the cachekit family's interop vectors write it.

What JSON cannot say plainly is a one-entry object: {"$float": "2.0"},
{"$bytes": "00ff"}, {"$datetime": "<isoformat>"}, {"$date": ...},
{"$time": ...}, {"$uuid": "..."}, {"$set": [...]}. The Rust side reads it with
cachekit_testkit::tagged.
"""

import datetime as dt
import uuid


def untag(j):
    """The Python value tagged JSON describes."""
    if isinstance(j, list):
        return [untag(item) for item in j]
    if isinstance(j, dict):
        if len(j) == 1:
            ((tag, inner),) = j.items()
            if tag.startswith("$"):
                return _untag_one(tag, inner)
        return {k: untag(v) for k, v in j.items()}
    if isinstance(j, float):
        raise ValueError(f"untagged float {j!r}: write {{'$float': '{j!r}'}}")
    return j


def _untag_one(tag, inner):
    if tag == "$float":
        return float(inner)
    if tag == "$int":
        return int(inner)
    if tag == "$bytes":
        return bytes.fromhex(inner)
    if tag == "$datetime":
        return dt.datetime.fromisoformat(inner)
    if tag == "$date":
        return dt.date.fromisoformat(inner)
    if tag == "$time":
        return dt.time.fromisoformat(inner)
    if tag == "$uuid":
        return uuid.UUID(inner)
    if tag == "$set":
        return set(untag(inner))
    raise ValueError(f"unknown tag {tag}")


def tag(v):
    """Tagged JSON for a Python value (the inverse of untag)."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return {"$float": repr(v)}
    if isinstance(v, (bytes, bytearray)):
        return {"$bytes": bytes(v).hex()}
    # datetime before date: a datetime is a date.
    if isinstance(v, dt.datetime):
        return {"$datetime": v.isoformat()}
    if isinstance(v, dt.date):
        return {"$date": v.isoformat()}
    if isinstance(v, dt.time):
        return {"$time": v.isoformat()}
    if isinstance(v, uuid.UUID):
        return {"$uuid": str(v)}
    if isinstance(v, (set, frozenset)):
        return {"$set": [tag(item) for item in v]}
    if isinstance(v, (list, tuple)):
        return [tag(item) for item in v]
    if isinstance(v, dict):
        return {k: tag(item) for k, item in v.items()}
    raise TypeError(f"cannot tag {type(v).__name__}")
