-- Switchboard: store a record and index it in its namespace.
--
-- KEYS[1]  <prefix>rec:{<namespace>}:<key>   the value
-- KEYS[2]  <prefix>recidx:{<namespace>}      sorted set: key -> expiry (ms, +inf = never)
-- ARGV[1]  the value (bytes)
-- ARGV[2]  time to live in milliseconds (0 = none)
-- ARGV[3]  the key within the namespace
-- ARGV[4]  '1': only if no live value is there (create), '0': replace (put)
-- Returns  1 if stored, 0 if a create found a live value.

local ttl = tonumber(ARGV[2])
if not ttl then
  return redis.error_reply('ERR switchboard record: ARGV[2] must be an integer')
end
local stored
if ttl > 0 and ARGV[4] == '1' then
  stored = redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX')
elseif ttl > 0 then
  stored = redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
elseif ARGV[4] == '1' then
  stored = redis.call('SET', KEYS[1], ARGV[1], 'NX')
else
  stored = redis.call('SET', KEYS[1], ARGV[1])
end
if not stored then return 0 end

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local expires = '+inf'
if ttl > 0 then expires = string.format('%.0f', now + ttl) end
redis.call('ZADD', KEYS[2], expires, ARGV[3])
-- Keep the index as small as the live records, even in a namespace nobody lists.
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. string.format('%.0f', now))
return 1
