-- An admission whose order is paid: its session ends at once (freeing its capacity), and
-- its token id goes on the show's spent stream, which every node's admission step reads
-- from where it left off and refuses until the token expires. The stream keeps about the
-- last 100,000 entries and lives until the latest entry's token has expired.
-- KEYS: active sessions zset, spent stream
-- ARGV: place ('' for none), jti, exp (Unix s), ms until exp
if ARGV[1] ~= '' then
    redis.call('ZREM', KEYS[1], 'fan:' .. ARGV[1])
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 100000, '*', 'jti', ARGV[2], 'exp', ARGV[3])
local keep = math.max(1, tonumber(ARGV[4]))
if redis.call('PTTL', KEYS[2]) < keep then
    redis.call('PEXPIRE', KEYS[2], keep)
end
return 1
