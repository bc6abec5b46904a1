"""The token bucket in Redis: one Lua script, atomic across instances and timed by Redis's own
clock, and the thread-local connection that runs it."""

from __future__ import annotations

import hashlib
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis

# KEYS[1] bucket; ARGV rate (tokens/s), burst, cost (tokens needed now, 1 unless given), lease
# (extra tokens wanted for later, 0 for none). Returns {allowed 0|1, retry_after_s, tokens_left,
# tokens_granted}: at least ``cost`` when allowed, plus as much of the lease as the bucket holds.
TOKEN_BUCKET_LUA = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3]) or 1
local lease = tonumber(ARGV[4]) or 0
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local retry = 0
local granted = 0
if tokens >= cost then
  granted = cost + math.max(0, math.min(lease, math.floor(tokens - cost)))
  tokens = tokens - granted
  allowed = 1
else
  retry = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return {allowed, tostring(retry), tostring(tokens), granted}
"""


class BucketScript:
    """The token bucket script, run with EVALSHA on a Redis connection of the calling thread's
    own (made like the client's pool makes them: same class, settings and TLS).

    redis-py's ``Script`` call goes through ``execute_command``: its retry wrapper, observability
    hooks, and the pool's checkout, which polls the socket before every command; about 165
    Python calls a round trip, against about 50 here. A connection that failed in any way is
    closed (a late reply can never be read as the next one's) and opened again on next use."""

    def __init__(self, source: str) -> None:
        self._source = source
        self._sha = hashlib.sha1(source.encode()).hexdigest()  # Redis names scripts by SHA-1
        self._local = threading.local()
        self._no_script: type[Exception] | None = None  # redis's NoScriptError, once redis is loaded

    def __call__(self, client: redis.Redis, keys: list[str], args: list[Any]) -> Any:
        local = self._local
        pool = client.connection_pool
        connection = getattr(local, "connection", None)
        if connection is None or local.pool is not pool:
            if connection is not None:
                connection.disconnect()
            connection = local.connection = pool.connection_class(**pool.connection_kwargs)
            local.pool = pool
            from redis.exceptions import NoScriptError

            self._no_script = NoScriptError
        no_script = self._no_script
        assert no_script is not None
        try:
            try:
                connection.send_command("EVALSHA", self._sha, len(keys), *keys, *args)
                return connection.read_response()
            except no_script:  # a Redis that restarted or was flushed: load it, once
                connection.send_command("SCRIPT", "LOAD", self._source)
                connection.read_response()
                connection.send_command("EVALSHA", self._sha, len(keys), *keys, *args)
                return connection.read_response()
        except BaseException:
            connection.disconnect()
            raise
