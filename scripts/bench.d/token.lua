-- Baseline: token bucket in a hash {tokens, ts}, read with HMGET and
-- written with HSET, refilled continuously.
-- KEYS[1] hash; ARGV: capacity, rate, period_ms, [cost]
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local period = tonumber(ARGV[3])
local cost = tonumber(ARGV[4] or '1')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local v = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(v[1]) or capacity
local ts = tonumber(v[2]) or now
if now > ts then
    tokens = math.min(capacity, tokens + (now - ts) * rate / period)
end
if tokens < cost then
    return {0, capacity, math.floor(tokens),
            math.ceil((cost - tokens) * period / rate),
            math.ceil((capacity - tokens) * period / rate)}
end
tokens = tokens - cost
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
local reset = math.ceil((capacity - tokens) * period / rate)
redis.call('PEXPIRE', KEYS[1], math.max(1, reset))
return {1, capacity, math.floor(tokens), 0, reset}
