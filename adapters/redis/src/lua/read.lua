-- Switchboard: read retained history after a seq, plus the stream's head.
--
-- KEYS[1]  <prefix>stream:{<stream>}:meta
-- KEYS[2]  <prefix>stream:{<stream>}:log
-- ARGV[1]  after: a decimal seq (0 = from the start)
-- ARGV[2]  limit: how many events at most (0 = none, only the head)
-- ARGV[3]  retention: the longest age kept, in milliseconds
-- Returns  { last_seq, trimmed_through, event JSON, ... } oldest first; trimmed_through
--          is the highest seq retention removed (0: none), so `trimmed` = it > after.
-- Read-only: age retention is applied by skipping, not deleting (the next append
-- deletes).

local meta, log = KEYS[1], KEYS[2]
local after = ARGV[1]
local limit = tonumber(ARGV[2])
local max_age = tonumber(ARGV[3])
if not (tonumber(after) and limit and max_age) then
  return redis.error_reply('ERR switchboard read: ARGV[1] to ARGV[3] must be integers')
end

local state = redis.call('HMGET', meta, 'seq', 'trimmed')
local last = state[1]
if not last then return { '0', '0' } end
local trimmed = state[2] or '0'

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
local cutoff = now - max_age

-- Find the expired prefix: events older than max_age are never returned, even when no
-- append has trimmed them yet.
local from, expired, any, batch = '-', nil, false, 1
while true do
  local entries = redis.call('XRANGE', log, from, '+', 'COUNT', batch)
  local young = false
  for _, entry in ipairs(entries) do
    any = true
    local t = entry_ts(entry)
    if t and t >= cutoff then
      young = true
      break
    end
    expired = entry[1]
  end
  if young or #entries < batch then break end
  from = '(' .. expired
  batch = 100
end
if not any then
  -- Nothing retained (the log expired, or max_events is 0): everything is gone.
  trimmed = last
elseif expired and tonumber(seq_of(expired)) > tonumber(trimmed) then
  trimmed = seq_of(expired)
end

local out = { last, trimmed }
if limit > 0 then
  local start = '(' .. after .. '-0'
  if expired and tonumber(seq_of(expired)) >= tonumber(after) then start = '(' .. expired end
  local entries = redis.call('XRANGE', log, start, '+', 'COUNT', ARGV[2])
  for _, entry in ipairs(entries) do
    local fields = entry[2]
    for i = 1, #fields, 2 do
      if fields[i] == 'e' then
        out[#out + 1] = fields[i + 1]
        break
      end
    end
  end
end
return out
