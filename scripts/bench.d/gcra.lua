-- Baseline: GCRA over one string holding the theoretical arrival time (µs),
-- with the server's TIME; max_burst + 1 at once, then rate per period.
-- KEYS[1] string; ARGV: max_burst, rate, period_ms, [cost]
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local period = tonumber(ARGV[3])
local cost = tonumber(ARGV[4] or '1')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local emission = period * 1000 / rate
local tolerance = emission * (burst + 1)
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then
    tat = now
end
local new_tat = tat + emission * cost
local allow_at = new_tat - tolerance
if allow_at > now then
    return {0, burst + 1, 0, math.ceil((allow_at - now) / 1000), math.ceil((tat - now) / 1000)}
end
local reset = math.max(1, math.ceil((new_tat - now) / 1000))
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', reset)
return {1, burst + 1, math.floor((now - allow_at) / emission), 0, reset}
