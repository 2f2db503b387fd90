-- A refunded order no longer counts as bought together, nor as bought (its items may be
-- recommended to the shopper again) (adapters/recs_store.py).
-- KEYS[1] recs:seen:<event id>, KEYS[2] recs:order:<order>; ARGV[1] ttl_s.
-- Returns 0 for an event already applied or an order it never saw, else 1.
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) == false then return 0 end
local raw = redis.call('GET', KEYS[2])
if not raw then return 0 end
local user, list = string.match(raw, '^(%d+):(.*)$')
local pids = {}
for pid in string.gmatch(list, '[^,]+') do pids[#pids + 1] = pid end
for n, pid in ipairs(pids) do
  redis.call('SREM', 'recs:bought:' .. user, pid)
  for m, q in ipairs(pids) do
    if m ~= n then
      local left = tonumber(redis.call('ZINCRBY', 'recs:cobuy:' .. pid, -1, q))
      if left <= 0 then redis.call('ZREM', 'recs:cobuy:' .. pid, q) end
    end
  end
end
redis.call('DEL', KEYS[2])
return 1
