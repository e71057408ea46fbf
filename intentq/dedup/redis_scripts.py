"""The Lua scripts behind the Redis store: each call is one atomic script on one key.

Times are the server's (``TIME``) in integer milliseconds: Lua numbers print with 14
significant digits, enough for epoch milliseconds but not microseconds. Every script touches
only ``KEYS[1]``, so they run unchanged on Redis Cluster. Replies are flat arrays whose first
element is a status code (``0``: the caller's token does not own the record).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# Shared by every script: the server clock, integer formatting, the owner check.
PRELUDE = """
local k = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function n(x) return string.format('%d', x) end
local function owned(token)
  local r = redis.call('HMGET', k, 'state', 'token')
  return token ~= '' and r[1] == 'in_progress' and r[2] == token
end
local function lost() return {0, redis.call('HGETALL', k)} end
"""

# ARGV: fingerprint, lease ms, ttl ms, new token.
# Replies: {1, token, attempts, takeover} | {2, result} | {3, error} | {4, retry ms} | {5, fp}
CLAIM = """
local fp, lease, ttl, token = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local r = redis.call('HMGET', k, 'state', 'fp', 'token', 'lease', 'attempts', 'result',
                     'error', 'expires')
if not r[1] then
  local expires = now + math.max(ttl, lease)
  redis.call('HSET', k, 'state', 'in_progress', 'fp', fp, 'token', token,
             'lease', n(now + lease), 'attempts', 1, 'created', n(now), 'updated', n(now),
             'expires', n(expires))
  redis.call('PEXPIREAT', k, n(expires))
  return {1, token, 1, 0}
end
if r[2] ~= fp then return {5, r[2]} end
if r[1] == 'completed' then return {2, r[6]} end
if r[1] == 'failed' then return {3, r[7] or '{}'} end
local lease_until = tonumber(r[4])
if lease_until > now then return {4, lease_until - now} end
local attempts = tonumber(r[5]) + 1
local expires = math.max(tonumber(r[8]), now + lease)
redis.call('HSET', k, 'token', token, 'lease', n(now + lease), 'attempts', attempts,
           'updated', n(now), 'expires', n(expires))
redis.call('PEXPIREAT', k, n(expires))
local takeover = 0
if r[3] ~= '' then takeover = 1 end
return {1, token, attempts, takeover}
"""

# ARGV: token, state ('completed' | 'failed'), field ('result' | 'error'), JSON, ttl ms.
FINISH = """
if not owned(ARGV[1]) then return lost() end
local expires = now + tonumber(ARGV[5])
redis.call('HSET', k, 'state', ARGV[2], ARGV[3], ARGV[4], 'token', '', 'lease', '0',
           'updated', n(now), 'expires', n(expires))
redis.call('PEXPIREAT', k, n(expires))
return {1}
"""

# ARGV: token.
RELEASE = """
if not owned(ARGV[1]) then return lost() end
redis.call('HSET', k, 'token', '', 'lease', '0', 'updated', n(now))
return {1}
"""

# ARGV: token, lease ms. Reply: {1, lease_until ms}.
EXTEND = """
if not owned(ARGV[1]) then return lost() end
local lease_until = now + tonumber(ARGV[2])
local expires = tonumber(redis.call('HGET', k, 'expires'))
redis.call('HSET', k, 'lease', n(lease_until), 'updated', n(now))
if lease_until > expires then
  redis.call('HSET', k, 'expires', n(lease_until))
  redis.call('PEXPIREAT', k, n(lease_until))
end
return {1, lease_until}
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
        "finish": FINISH,
        "release": RELEASE,
        "extend": EXTEND,
        "reset": RESET,
    }.items()
}
