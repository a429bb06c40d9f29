-- A called fan, polling, turns its call into an admission session; a repeat poll gets the
-- same session back. A place never called, skipped, or whose call or session ended gets
-- nothing.
-- KEYS: active sessions zset, per-second issues hash
-- ARGV: place, now_ms, session_ttl_ms
local active, issues = KEYS[1], KEYS[2]
local now = tonumber(ARGV[2])
local session = 'fan:' .. ARGV[1]
local expires = redis.call('ZSCORE', active, session)
if expires and tonumber(expires) > now then
    return {'admitted', expires}
end
if redis.call('ZREM', active, 'call:' .. ARGV[1]) == 1 then
    expires = now + tonumber(ARGV[3])
    redis.call('ZADD', active, expires, session)
    redis.call('HINCRBY', issues, math.floor(now / 1000), 1)
    return {'admitted', tostring(expires)}
end
return {'missed'}
