-- Baseline: sliding window log in a sorted set, one member per accepted
-- unit, scored by its time in µs.
-- KEYS[1] zset; ARGV: limit, window_ms, [cost], [now_ms] (default: TIME)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2]) * 1000
local cost = tonumber(ARGV[3] or '1')
local now
if ARGV[4] then
    now = tonumber(ARGV[4]) * 1000
else
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local key = KEYS[1]
redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%d', now - window))
local n = redis.call('ZCARD', key)
if n + cost > limit then
    local retry = -1
    if cost <= limit then
        local oldest = redis.call('ZRANGE', key, n + cost - limit - 1, n + cost - limit - 1, 'WITHSCORES')
        retry = math.ceil((tonumber(oldest[2]) + window - now) / 1000)
    end
    return {0, limit, limit - n, retry, window / 1000}
end
local stamp = string.format('%d', now)
local args = {}
for i = 1, cost do
    args[#args + 1] = stamp
    args[#args + 1] = stamp .. '-' .. (n + i)
    if #args >= 1000 then
        redis.call('ZADD', key, unpack(args))
        args = {}
    end
end
if #args > 0 then
    redis.call('ZADD', key, unpack(args))
end
redis.call('PEXPIRE', key, window / 1000)
return {1, limit, limit - n - cost, 0, window / 1000}
