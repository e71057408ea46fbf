"""The Lua scripts behind the Redis store: each call is one atomic script on one key.

Every field written costs server time, so a script writes only what changed or what a
reader cannot infer: a new record has no ``updated`` (it is ``created``), and a finished one
keeps its last ``token`` and ``lease``, which readers ignore once the state is final.
Times are the server's (``TIME``) in integer milliseconds: doubles hold them exactly and
``redis.call`` writes integral numbers without an exponent. Every script touches
only ``KEYS[1]``, so they run unchanged on Redis Cluster. A claim of a new key answers 1,
any other claim an array whose first element says what it is; the owner-only scripts answer
a number on success (a plain integer parses faster than an array) and ``{0, record}`` when
the caller's token does not own the record.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from intentq.dedup.codec import RECORD_FORMAT

# Shared by every script: the key, the server clock and the record format written.
PRELUDE = f"""
local FMT = {RECORD_FORMAT}
local k = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# For the scripts only the token's owner may run; a stale caller gets the record as it is.
OWNER_ONLY = """
local r = redis.call('HMGET', k, 'state', 'token')
if ARGV[1] == '' or r[1] ~= 'in_progress' or r[2] ~= ARGV[1] then
  return {0, redis.call('HGETALL', k)}
end
"""

# ARGV: fingerprint, lease ms, ttl ms, new token.
# Replies: 1 (a new key: acquired, first attempt) | {1, attempts, takeover} | {2, result} |
# {3, error} | {4, retry ms} | {5, fp} | {6, fmt}. The caller made the token, so it is not
# sent back. A record states its format (``fmt``; none: written by 0.1, read as it is); one
# newer than FMT answers {6, fmt} before anything else is read or changed.
CLAIM = """
local fp, lease, ttl, token = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local r = redis.call('HMGET', k, 'state', 'fp', 'token', 'lease', 'attempts', 'result',
                     'error', 'expires', 'fmt')
if not r[1] then
  local expires = now + math.max(ttl, lease)
  redis.call('HSET', k, 'state', 'in_progress', 'fp', fp, 'token', token,
             'lease', now + lease, 'attempts', 1, 'created', now, 'expires', expires,
             'fmt', FMT)
  redis.call('PEXPIREAT', k, expires)
  return 1
end
if r[9] and tonumber(r[9]) > FMT then return {6, r[9]} end
if r[2] ~= fp then return {5, r[2]} end
if r[1] == 'completed' then return {2, r[6]} end
if r[1] == 'failed' then return {3, r[7] or '{}'} end
local lease_until = tonumber(r[4])
if lease_until > now then return {4, lease_until - now} end
local attempts = tonumber(r[5]) + 1
local expires = math.max(tonumber(r[8]), now + lease)
redis.call('HSET', k, 'token', token, 'lease', now + lease, 'attempts', attempts,
           'updated', now, 'expires', expires, 'fmt', FMT)
redis.call('PEXPIREAT', k, expires)
local takeover = 0
if r[3] ~= '' then takeover = 1 end
return {1, attempts, takeover}
"""

# ARGV: token, state ('completed' | 'failed'), field ('result' | 'error'), JSON, ttl ms.
# The token and lease are left as they were: they mean nothing once the state is final.
# The final state is published on the channel named like the record's key, so waiters
# (intentq.waiting) wake at once; with no subscriber PUBLISH costs about a microsecond.
FINISH = """
local expires = now + tonumber(ARGV[5])
redis.call('HSET', k, 'state', ARGV[2], ARGV[3], ARGV[4], 'updated', now, 'expires', expires)
redis.call('PEXPIREAT', k, expires)
redis.call('PUBLISH', k, ARGV[2])
return 1
"""

# ARGV: token.
RELEASE = """
redis.call('HSET', k, 'token', '', 'lease', '0', 'updated', now)
return 1
"""

# ARGV: token, lease ms. Reply: the new lease_until in ms.
EXTEND = """
local lease_until = now + tonumber(ARGV[2])
local expires = tonumber(redis.call('HGET', k, 'expires'))
redis.call('HSET', k, 'lease', lease_until, 'updated', now)
if lease_until > expires then
  redis.call('HSET', k, 'expires', lease_until)
  redis.call('PEXPIREAT', k, lease_until)
end
return lease_until
"""

# Deletes a failed record only. Reply: 1 if deleted.
RESET = """
if redis.call('HGET', k, 'state') == 'failed' then return redis.call('DEL', k) end
return 0
"""


@dataclass(frozen=True)
class Script:
    """A script's source and the SHA1 that ``EVALSHA`` names it by."""

    name: str
    source: str
    sha: str


def _script(name: str, body: str) -> Script:
    source = PRELUDE + body
    return Script(name, source, hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest())


SCRIPTS = {
    name: _script(name, body)
    for name, body in {
        "claim": CLAIM,
        "finish": OWNER_ONLY + FINISH,
        "release": OWNER_ONLY + RELEASE,
        "extend": OWNER_ONLY + EXTEND,
        "reset": RESET,
    }.items()
}
