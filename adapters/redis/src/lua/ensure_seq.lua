-- Switchboard: make every later append to a stream get a seq above a floor (a
-- transcript kept elsewhere already used the seqs up to it). Atomic with appends.
--
-- KEYS[1]  <prefix>stream:{<stream>}:meta   hash: seq, ts, trimmed
-- KEYS[2]  <prefix>stream:{<stream>}:log    stream: ID <seq>-0, fields e, t
-- ARGV[1]  the floor: a decimal seq, at most 2^53
-- ARGV[2]  time to live of the meta key, in milliseconds (as append.lua's ARGV[6])
-- Returns  1 if it raised the stream's seq, 0 if the seq was already at the floor.
--
-- Raising sets seq to the floor and trimmed to it (the history up to the floor lives
-- elsewhere), and drops the log entries at or below it, so `read` never returns part
-- of what it reports as removed. A seq already at or above the floor is left alone.

local meta, log = KEYS[1], KEYS[2]
local floor = tonumber(ARGV[1])
if not (floor and tonumber(ARGV[2])) then
  return redis.error_reply('ERR switchboard ensure_seq: ARGV[1] and ARGV[2] must be integers')
end

local seq = tonumber(redis.call('HGET', meta, 'seq'))
if seq and seq >= floor then return 0 end

local floor_s = string.format('%.0f', floor)
local new_seq = floor_s
if not seq then
  -- No counter but maybe a surviving log (the meta key was evicted): append would
  -- seed above the log's top; stay above it too.
  local top = redis.call('XREVRANGE', log, '+', '-', 'COUNT', 1)[1]
  if top then
    local top_seq = tonumber(string.match(top[1], '^(%d+)'))
    if top_seq > floor then new_seq = string.format('%.0f', top_seq) end
  end
end
redis.call('HSET', meta, 'seq', new_seq, 'trimmed', floor_s)
-- MINID removes every ID below <floor>-1, i.e. through <floor>-0.
redis.call('XTRIM', log, 'MINID', floor_s .. '-1')
redis.call('PEXPIRE', meta, ARGV[2])
return 1
