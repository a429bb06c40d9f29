-- An account's place in a show's queue: the one it already has, else the next number.
-- Before the sale opens a new place is a pre-queue join (numbered in join order, placed by
-- the draw at the opening); from the opening on, the pre-queue is frozen and new places are
-- taken behind it. Each account's place is recorded in one of the show's 16,384 account
-- hashes (chosen by the account id's last 14 bits), under the id's 16 bytes: the open place,
-- or -(join number + 1) for a pre-queue join. Small hashes of small integers stay listpacks,
-- about 25 bytes per account.
-- KEYS: state hash, the current presence bitmap, the account's hash
-- ARGV: now_ms, sale_opens_ms, seed (hex, kept if one is set), presence ttl ms,
--       account id (16 bytes), the recorded value to give up ('' for none: a place whose
--       turn passed is replaced by a new one only when the caller names it)
-- Returns {lane, number, 1 for a new place or 0 for the account's recorded one}
local state, seen, accounts = KEYS[1], KEYS[2], KEYS[3]
local recorded = redis.call('HGET', accounts, ARGV[5])
if recorded and recorded ~= ARGV[6] then
    local value = tonumber(recorded)
    if value < 0 then
        return {'pre', -value - 1, 0}
    end
    return {'open', value, 0}
end
local now, sale_opens = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('HSETNX', state, 'seed', ARGV[3])
local frozen = redis.call('HGET', state, 'frozen')
if not frozen and now < sale_opens then
    local number = redis.call('HINCRBY', state, 'pre', 1) - 1
    redis.call('HSET', accounts, ARGV[5], -number - 1)
    return {'pre', number, 1}
end
if not frozen then
    frozen = redis.call('HGET', state, 'pre') or '0'
    redis.call('HSET', state, 'frozen', frozen)
end
local place = tonumber(frozen) + redis.call('HINCRBY', state, 'open', 1) - 1
redis.call('HSET', accounts, ARGV[5], place)
redis.call('SETBIT', seen, place, 1)
redis.call('PEXPIRE', seen, ARGV[4])
return {'open', place, 1}
