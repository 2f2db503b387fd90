-- Prepended to every script of this directory when it is loaded (adapters/redis_conn.py):
-- the clock, exact integers in JSON, and the one place an event envelope and its outbox
-- entry are built. Ids travel as decimal strings: Lua numbers are doubles (inexact above
-- 2^53) and cjson writes numbers with 14 significant digits, so neither may touch an id.

-- Order ids are sale_id * SEQ_SPAN + seq: sale ids stay below 2^20, so every order id is
-- below 2^52 and exact as a Lua number and as a JSON number in any client.
local SEQ_SPAN = 4294967296

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- An integer as JSON text. A decimal string is checked and kept verbatim (ids from ARGV or
-- hashes); a number must be whole and below 2^53 (counts, times, order ids).
local function int(v)
  if type(v) == 'number' then
    if v ~= math.floor(v) or v >= 9007199254740992 or v <= -9007199254740992 then
      error('inexact integer ' .. tostring(v))
    end
    return string.format('%.0f', v)
  end
  if not string.match(v, '^%-?%d+$') then error('not an integer: ' .. tostring(v)) end
  return v
end

local function str(s) return cjson.encode(s) end

-- JSON object members from a flat list of names and JSON texts (from int() or str()).
local function members(fields)
  local parts = {}
  for i = 1, #fields, 2 do parts[#parts + 1] = '"' .. fields[i] .. '":' .. fields[i + 1] end
  return table.concat(parts, ',')
end

-- The envelope of nexuscart.events: {id, type, version, occurred_at, key, data}. ``key`` is
-- the buyer's user id (decimal string); ``data`` the members of the event after its type
-- (from members(), or built by the caller from checked parts).
local function event_json(etype, event_id, occurred_at, user_id, data)
  local t = str(etype)
  return '{"id":' .. str(event_id) .. ',"type":' .. t .. ',"version":1,"occurred_at":'
    .. str(occurred_at) .. ',"key":"' .. user_id .. '","data":{"type":' .. t .. ',' .. data
    .. '}}'
end

-- One outbox entry: 'k' the Kafka message key (the user id), 'e' the event (the relay reads
-- both through FlashSaleStore.read_outbox).
-- traceparent (optional): the W3C trace context of a sampled request, for the relay to put
-- in the Kafka record's headers
local function outbox_append(outbox, user_id, event, traceparent)
  if traceparent and traceparent ~= '' then
    redis.call('XADD', outbox, '*', 'k', user_id, 'e', event, 'tp', traceparent)
  else
    redis.call('XADD', outbox, '*', 'k', user_id, 'e', event)
  end
end

-- One entry of a capped log stream that is not an integration event (no envelope, never
-- relayed), such as the recommendation signals' log that training reads.
local function log_append(stream, maxlen, ...)
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', ...)
end

-- One entry of a stream that is not an integration event and is not capped either: its
-- reader deletes each entry once done with it (the payments webhook inbox).
local function entry_append(stream, ...)
  redis.call('XADD', stream, '*', ...)
end
