-- Changes a show's settings from the admin API, if they are still the ones the change was
-- made from, and appends the change to the show's audit stream (about the last 10,000
-- changes); returns the new version, or -1 when the settings changed meanwhile.
-- KEYS: state hash, audit stream
-- ARGV: settings json the change was made from, new settings json, then the audit
--       entry's field/value pairs
local state = KEYS[1]
if redis.call('HGET', state, 'settings') ~= ARGV[1] then
    return -1
end
redis.call('HSET', state, 'settings', ARGV[2])
local version = redis.call('HINCRBY', state, 'version', 1)
local entry = { 'version', version }
for i = 3, #ARGV do
    entry[#entry + 1] = ARGV[i]
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 10000, '*', unpack(entry))
return version
