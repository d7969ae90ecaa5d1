-- Switchboard: every live record of a namespace.
--
-- KEYS[1]  <prefix>recidx:{<namespace>}
-- ARGV[1]  <prefix>rec:{<namespace>}:   (what every value key of the namespace starts with)
-- Returns  { key, value, key, value, ... }

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%.0f', now))
local out = {}
for _, key in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local value = redis.call('GET', ARGV[1] .. key)
  if value then
    out[#out + 1] = key
    out[#out + 1] = value
  else
    -- Deleted or expired behind the index's back: forget it.
    redis.call('ZREM', KEYS[1], key)
  end
end
return out
