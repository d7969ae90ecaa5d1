-- Switchboard: replace or remove a record only if it holds exactly the expected value.
--
-- KEYS[1]  <prefix>rec:{<namespace>}:<key>   the value
-- KEYS[2]  <prefix>recidx:{<namespace>}      sorted set: key -> expiry (ms, +inf = never)
-- ARGV[1]  the expected value (bytes)
-- ARGV[2]  the key within the namespace
-- ARGV[3]  time to live of the replacement in milliseconds (0 = none)
-- ARGV[4]  the replacement (bytes); absent: remove the record
-- Returns  1 if replaced (or removed), 0 if the live value is absent or different.

local ttl = tonumber(ARGV[3])
if not ttl then
  return redis.error_reply('ERR switchboard record: ARGV[3] must be an integer')
end
-- GET never returns an expired value, so an expired record matches nothing.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
if #ARGV < 4 then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[2])
else
  local expires = '+inf'
  if ttl > 0 then
    redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[3])
    expires = string.format('%.0f', now + ttl)
  else
    -- A plain SET also drops the old value's expiry: the replacement never expires.
    redis.call('SET', KEYS[1], ARGV[4])
  end
  redis.call('ZADD', KEYS[2], expires, ARGV[2])
end
-- Keep the index as small as the live records, even in a namespace nobody lists.
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. string.format('%.0f', now))
return 1
