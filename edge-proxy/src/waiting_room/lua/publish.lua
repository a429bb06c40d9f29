-- Publishes a show's settings from an edge node's config file when they differ from the
-- ones in Redis, resetting `paused` to the file's value; returns the version in force.
-- KEYS: state hash
-- ARGV: settings json, paused (0/1)
local state = KEYS[1]
if redis.call('HGET', state, 'settings') == ARGV[1] then
    return tonumber(redis.call('HGET', state, 'version') or '0')
end
redis.call('HSET', state, 'settings', ARGV[1], 'paused', ARGV[2])
return redis.call('HINCRBY', state, 'version', 1)
