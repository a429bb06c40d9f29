-- One step of a show's admission, run by every edge node every refresh: freezes the
-- pre-queue once the sale is open, drops ended sessions and lapsed calls, records the
-- places seen polling, then moves the serving counter over the queue: a place whose fan
-- has not been seen within the no-show grace is skipped for free; a present fan is called
-- when a whole admission is banked (admit_per_minute accrues with time, at most one
-- second's worth banked), admission is not paused or sold out, and fewer than max_active
-- sessions and calls are open. A call
-- holds capacity until the fan claims it (claim.lua) or the claim window lapses.
-- Returns the serving state every node caches.
-- KEYS: state, current presence bitmap, previous presence bitmap, active sessions zset,
--       per-second calls hash, per-second issues hash, presence union scratch key
-- ARGV: now_ms, sale_opens_ms, admit_per_minute, max_active, protect_until_ms, sold out (0/1),
--       max_steps, claim_window_ms, presence ttl ms, known settings version,
--       a seed for the draw (kept only if the show has none yet),
--       then the places seen polling since the last step
local state, seen, seen_prev, active, calls, issues, union = unpack(KEYS)
local now, sale_opens = tonumber(ARGV[1]), tonumber(ARGV[2])
local rate, max_active = tonumber(ARGV[3]), tonumber(ARGV[4])
local protect_until, halt = tonumber(ARGV[5]), ARGV[6] == '1'
local max_steps, claim_window = tonumber(ARGV[7]), tonumber(ARGV[8])

redis.call('HSETNX', state, 'seed', ARGV[11])
for i = 12, #ARGV do
    redis.call('SETBIT', seen, ARGV[i], 1)
end
if #ARGV > 11 then
    redis.call('PEXPIRE', seen, ARGV[9])
end

local frozen = redis.call('HGET', state, 'frozen')
if not frozen and now >= sale_opens then
    frozen = redis.call('HGET', state, 'pre') or '0'
    redis.call('HSET', state, 'frozen', frozen)
end
redis.call('ZREMRANGEBYSCORE', active, '-inf', now)
local open_count = redis.call('ZCARD', active)

local fields = redis.call('HMGET', state, 'serving', 'last_ms', 'carry', 'open', 'pre',
    'skipped', 'first_call_ms', 'paused')
local serving = tonumber(fields[1] or '0')
local last = tonumber(fields[2] or ARGV[1])
local carry = tonumber(fields[3] or '0')
local pre = tonumber(fields[5] or '0')
local skipped = tonumber(fields[6] or '0')
local first_call = fields[7]
local paused = fields[8] or '0'
halt = halt or paused == '1'
local total = 0
if frozen then
    total = tonumber(frozen) + tonumber(fields[4] or '0')
end
if now > last then
    carry = carry + (now - last) * rate / 60000
    last = now
end
carry = math.min(carry, math.max(1, rate / 60))

local second = math.floor(now / 1000)
local called = 0
if frozen and not halt then
    local steps = 0
    while serving < total and steps < max_steps do
        local present = (serving < tonumber(frozen) and now < protect_until)
            or redis.call('GETBIT', seen, serving) == 1
            or redis.call('GETBIT', seen_prev, serving) == 1
        if present then
            if carry < 1 or open_count >= max_active then
                break
            end
            carry = carry - 1
            open_count = open_count + 1
            called = called + 1
            redis.call('ZADD', active, now + claim_window, 'call:' .. serving)
        else
            skipped = skipped + 1
        end
        serving = serving + 1
        steps = steps + 1
    end
end
if called > 0 then
    redis.call('HINCRBY', calls, second, called)
    if not first_call then
        first_call = ARGV[1]
        redis.call('HSET', state, 'first_call_ms', first_call)
    end
end
redis.call('HSET', state, 'serving', serving, 'last_ms', last, 'carry', carry,
    'skipped', skipped)

-- Calls and issues in the last minute; older seconds are dropped.
local function last_minute(hash)
    local sum = 0
    local flat = redis.call('HGETALL', hash)
    for i = 1, #flat, 2 do
        if tonumber(flat[i]) <= second - 60 then
            redis.call('HDEL', hash, flat[i])
        else
            sum = sum + tonumber(flat[i + 1])
        end
    end
    return sum
end
local called_last_minute = last_minute(calls)
local issued_last_minute = last_minute(issues)

-- Fans present at or behind the counter, in up to 64 blocks: block end place, then the
-- present count up to it, for positions that leave out fans who walked away.
local blocks = {}
local waiting = total - serving
if waiting > 0 then
    redis.call('BITOP', 'OR', union, seen, seen_prev)
    redis.call('PEXPIRE', union, 1000)
    local size = math.max(8, math.ceil(waiting / 64))
    local cumulative = 0
    local start = serving
    while start < total do
        local stop = math.min(start + size, total)
        local count
        if frozen and stop <= tonumber(frozen) and now < protect_until then
            count = stop - start
        else
            count = redis.call('BITCOUNT', union, start, stop - 1, 'BIT')
        end
        cumulative = cumulative + count
        blocks[#blocks + 1] = stop
        blocks[#blocks + 1] = cumulative
        start = stop
    end
end

local settings = redis.call('HMGET', state, 'version', 'settings', 'seed')
local version = settings[1] or '0'
local settings_json = ''
if version ~= ARGV[10] then
    settings_json = settings[2] or ''
end
return {{serving, total, frozen or '-1', pre, open_count, called_last_minute},
    {issued_last_minute, skipped, first_call or '-1', settings[3] or '', version, settings_json},
    {paused, blocks}}
