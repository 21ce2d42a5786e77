"""Calls cachekit-py @cache(interop=...) functions the way a test describes
them, and reports what each call returned and whether its body ran.

argv[1] is JSON: {"calls": [CALL, ...], "file_dir": dir (optional)}, each CALL
  {"namespace": ..., "operation": ..., "args": [tagged],
   "defaults": k,      the last k args are parameter defaults, not passed
   "value": tagged,    what the body returns; without it, MARKER
   "encryption": {"master_key": hex, "tenant": "default" | canonical uuid}}
or, to plant a cachekit-py auto-mode (CK-framed) entry under an interop key,
  {"auto": true, "namespace": ..., "args": [...], "value": ..., "copy_to": key}.
Redis: CACHEKIT_REDIS_URL; with "file_dir", cachekit-py's file backend in
that directory instead. stdout: one JSON list, per call
  {"ran": bool, "value": tagged} (auto: {"ran": bool, "stored": hex}).
"""

import json
import os
import sys

import redis

from tagged import tag, untag

from cachekit import cache
from cachekit.backends.redis import RedisBackend

# What a body returns when the test expects the value from Redis instead.
MARKER = "python body ran"

# The default backend prefixes keys and refuses interop mode: name one
# (main() chooses it).
BACKEND = None


def function(arity, body):
    """A plain function of `arity` positional parameters a0.. calling body():
    cachekit-py binds and hashes arguments by the signature."""
    params = ", ".join(f"a{i}" for i in range(arity))
    scope = {"body": body}
    exec(f"def fn({params}):\n    return body()\n", scope)
    return scope["fn"]


def run(call):
    ran = []
    value = untag(call["value"]) if "value" in call else MARKER

    def body():
        ran.append(1)
        return value

    args = untag(call["args"])
    defaults = call.get("defaults", 0)
    fn = function(len(args), body)
    if defaults:
        fn.__defaults__ = tuple(args[len(args) - defaults :])
        args = args[: len(args) - defaults]
    options = {"namespace": call["namespace"], "ttl": 300, "l1_enabled": False, "backend": BACKEND}
    if call.get("auto"):
        return plant_auto(cache(**options)(fn), args, ran, call)
    options["interop"] = call["operation"]
    enc = call.get("encryption")
    if enc:
        options.update(encryption=True, single_tenant_mode=True, master_key=enc["master_key"])
        if enc["tenant"] != "default":
            options["deployment_uuid"] = enc["tenant"]
    result = cache(**options)(fn)(*args)
    return {"ran": bool(ran), "value": tag(result)}


def plant_auto(cached, args, ran, call):
    cached(*args)
    client = redis.Redis.from_url(os.environ["CACHEKIT_REDIS_URL"])
    keys = list(client.scan_iter(f"ns:{call['namespace']}:*"))
    if len(keys) != 1:
        raise SystemExit(f"expected one auto-mode key under ns:{call['namespace']}:, found {keys}")
    stored = client.get(keys[0])
    client.set(call["copy_to"], stored, ex=300)
    return {"ran": bool(ran), "stored": stored.hex()}


def main():
    global BACKEND
    spec = json.loads(sys.argv[1])
    if "file_dir" in spec:
        from cachekit.backends.file import FileBackend
        from cachekit.backends.file.config import FileBackendConfig

        BACKEND = FileBackend(FileBackendConfig(cache_dir=spec["file_dir"]))
    else:
        BACKEND = RedisBackend()
    print(json.dumps([run(call) for call in spec["calls"]]))


if __name__ == "__main__":
    main()
