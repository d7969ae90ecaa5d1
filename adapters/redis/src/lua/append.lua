-- Switchboard: append one event to a stream. Atomic: seq assignment, storage, trimming
-- and live fan-out happen in this one script, so the order of seq, of history and of
-- live delivery is the same for every replica and every direct publisher.
--
-- KEYS[1]  <prefix>stream:{<stream>}:meta   hash: seq, ts, trimmed
-- KEYS[2]  <prefix>stream:{<stream>}:log    stream: ID <seq>-0, fields e (event JSON), t (ts)
-- ARGV[1]  <prefix>stream:{<stream>}:live   channel the event JSON is published on
-- ARGV[2]  the event body: a JSON object with "type" and the body's fields, without
--          "seq" and "ts" (the script adds them)
-- ARGV[3]  retention: how many events are kept (exact)
-- ARGV[4]  retention: the longest age kept, in milliseconds
-- ARGV[5]  time to live of the log key, in milliseconds (max age plus a margin)
-- ARGV[6]  time to live of the meta key, in milliseconds (longer than ARGV[5])
-- Returns  { seq, ts } as decimal strings.

local meta, log = KEYS[1], KEYS[2]
local channel, body = ARGV[1], ARGV[2]
local max_events = tonumber(ARGV[3])
local max_age = tonumber(ARGV[4])
if not (max_events and max_age and tonumber(ARGV[5]) and tonumber(ARGV[6])) then
  return redis.error_reply('ERR switchboard append: ARGV[3] to ARGV[6] must be integers')
end

-- The body is spliced as text, never decoded: cjson would turn 18446744073709551615
-- into 1.844674407371e+19 and reorder keys.
local inner = string.match(body, '^%s*{(.*)}%s*$')
if inner == nil then
  return redis.error_reply('ERR switchboard append: the body must be a JSON object')
end
if string.match(inner, '^%s*$') then inner = '' else inner = ',' .. inner end

local function seq_of(id)
  return string.match(id, '^(%d+)')
end

local function entry_ts(entry)
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 't' then return tonumber(fields[i + 1]) end
  end
  return nil
end

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

local state = redis.call('HMGET', meta, 'seq', 'ts')
local seq = tonumber(state[1])
if seq then
  seq = seq + 1
else
  -- No counter: a new stream, or one Redis forgot (idle past the meta TTL, evicted,
  -- flushed, restarted without persistence). Seed from the clock so seq never goes
  -- backwards for anyone who saw the old counter, and stay above a surviving log.
  seq = now * 1000 + 1
  local top = redis.call('XREVRANGE', log, '+', '-', 'COUNT', 1)[1]
  if top and tonumber(seq_of(top[1])) >= seq then seq = tonumber(seq_of(top[1])) + 1 end
end
-- ts never goes backwards within a stream, even if the server clock does.
local ts = now
local last_ts = tonumber(state[2])
if last_ts and last_ts > ts then ts = last_ts end
local seq_s = string.format('%.0f', seq)
local ts_s = string.format('%.0f', ts)
redis.call('HSET', meta, 'seq', seq_s, 'ts', ts_s)

local event = '{"seq":' .. seq_s .. ',"ts":' .. ts_s .. inner .. '}'
redis.call('XADD', log, seq_s .. '-0', 'e', event, 't', ts_s)

-- Retention by count, exact (MAXLEN without '~'): note the newest seq removed.
local trimmed_through = nil
local excess = redis.call('XLEN', log) - max_events
if excess > 0 then
  local gone = redis.call('XRANGE', log, '-', '+', 'COUNT', excess)
  trimmed_through = gone[#gone][1]
  redis.call('XTRIM', log, 'MAXLEN', ARGV[3])
end

-- Retention by age: drop the oldest entries whose ts is older than max_age. The entry
-- just added is never one of them, so the loop ends there at the latest. The common
-- case (the oldest entry is young) costs one single-entry XRANGE.
local cutoff = now - max_age
local batch = 1
while true do
  local oldest = redis.call('XRANGE', log, '-', '+', 'COUNT', batch)
  local expired, young = nil, false
  for _, entry in ipairs(oldest) do
    local t = entry_ts(entry)
    if t and t >= cutoff then
      young = true
      break
    end
    expired = entry[1]
  end
  if expired == nil then break end
  trimmed_through = expired
  -- MINID removes every ID below <seq>-1, i.e. through <seq>-0.
  redis.call('XTRIM', log, 'MINID', seq_of(expired) .. '-1')
  if young or #oldest < batch then break end
  batch = 100
end
if trimmed_through then
  redis.call('HSET', meta, 'trimmed', seq_of(trimmed_through))
end

redis.call('PUBLISH', channel, event)
redis.call('PEXPIRE', log, ARGV[5])
redis.call('PEXPIRE', meta, ARGV[6])
return { seq_s, ts_s }
