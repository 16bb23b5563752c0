-- Baseline: sliding window counter over two string keys, one per window
-- (<prefix>:<window index>); the previous window is weighted by its overlap.
-- KEYS[1] prefix; ARGV: limit, window_ms, [cost], [now_ms] (default: TIME)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3] or '1')
local now
if ARGV[4] then
    now = tonumber(ARGV[4])
else
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local idx = math.floor(now / window)
local elapsed = now - idx * window
local cur_key = KEYS[1] .. ':' .. string.format('%d', idx)
local prev_key = KEYS[1] .. ':' .. string.format('%d', idx - 1)
local v = redis.call('MGET', prev_key, cur_key)
local prev = tonumber(v[1]) or 0
local cur = tonumber(v[2]) or 0
local estimate = prev * (window - elapsed) / window + cur
local reset = 2 * window - elapsed
if estimate + cost > limit then
    return {0, limit, 0, window - elapsed, reset}
end
cur = redis.call('INCRBY', cur_key, cost)
if cur == cost then
    redis.call('PEXPIRE', cur_key, 2 * window)
end
return {1, limit, math.floor(limit - estimate - cost), 0, reset}
