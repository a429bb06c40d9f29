-- Places fans hold in signed queue tokens but the show's state no longer has: Redis came
-- back from a point before their joins were written (with `appendfsync everysec`, at most
-- the last second before a crash). Each is recorded as its account's place unless the
-- account has one again, and the lane's counter is raised past it, so no later join is given
-- the same number. An open place waits until the pre-queue is frozen; a pre-queue join
-- found after the draw is past restoring (the draw placed the joins it knew).
-- KEYS: state hash, then each entry's account hash
-- ARGV: per entry, the lane ('open' or 'pre'), the number, the account id (16 bytes)
-- Returns the number of entries that raised a counter or recorded a place.
local state = KEYS[1]
local frozen = redis.call('HGET', state, 'frozen')
local restored = 0
for i = 1, #ARGV, 3 do
    local lane, number, account = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
    local accounts = KEYS[(i + 2) / 3 + 1]
    local changed = 0
    if lane == 'open' and frozen then
        local open = tonumber(redis.call('HGET', state, 'open') or '0')
        if number >= tonumber(frozen) + open then
            redis.call('HSET', state, 'open', number - tonumber(frozen) + 1)
            changed = 1
        end
        changed = changed + redis.call('HSETNX', accounts, account, number)
    elseif lane == 'pre' and not frozen then
        local pre = tonumber(redis.call('HGET', state, 'pre') or '0')
        if number >= pre then
            redis.call('HSET', state, 'pre', number + 1)
            changed = 1
        end
        changed = changed + redis.call('HSETNX', accounts, account, -number - 1)
    end
    if changed > 0 then
        restored = restored + 1
    end
end
return restored
