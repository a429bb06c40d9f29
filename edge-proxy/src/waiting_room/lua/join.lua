-- Takes the next number in a show's queue. Before the sale opens a join is a pre-queue join
-- (numbered in join order, placed by the draw at the opening); from the opening on, the
-- pre-queue is frozen and joins take the next place behind it.
-- KEYS: state hash, the current presence bitmap
-- ARGV: now_ms, sale_opens_ms, seed (hex, kept if one is set), presence ttl ms
local state, seen = KEYS[1], KEYS[2]
local now, sale_opens = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('HSETNX', state, 'seed', ARGV[3])
local frozen = redis.call('HGET', state, 'frozen')
if not frozen and now < sale_opens then
    return {'pre', redis.call('HINCRBY', state, 'pre', 1) - 1}
end
if not frozen then
    frozen = redis.call('HGET', state, 'pre') or '0'
    redis.call('HSET', state, 'frozen', frozen)
end
local place = tonumber(frozen) + redis.call('HINCRBY', state, 'open', 1) - 1
redis.call('SETBIT', seen, place, 1)
redis.call('PEXPIRE', seen, ARGV[4])
return {'open', place}
