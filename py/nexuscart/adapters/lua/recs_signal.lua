-- One shopper signal applied to the recommendation keys, once (adapters/recs_store.py).
-- KEYS[1] recs:seen:<event id>   KEYS[2] recs:recent:<user>   KEYS[3] recs:rbuy:<user>
-- KEYS[4] recs:bought:<user>     KEYS[5] recs:order:<order>   KEYS[6] recs:log
-- then per item i (0-based): KEYS[7+3i] recs:covis:<pid>, KEYS[8+3i] recs:cobuy:<pid>,
-- KEYS[9+3i] recs:trend:<category>
-- ARGV: kind (view|cart|order), at_ms, weight, trend increment (forward-decayed weight),
-- user id ('0' anonymous), window_ms, recent max, neighbours max, log maxlen, ttl_s,
-- then the product ids (an order's lines: several).
-- Returns 0 for an event already applied, else 1.
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[10]) == false then return 0 end
local kind, at, w, trend = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local user, window = ARGV[5], tonumber(ARGV[6])
local recent_max, top, maxlen, ttl = tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9], ARGV[10]
local pids = {}
for i = 11, #ARGV do pids[#pids + 1] = ARGV[i] end

local function trim(key)  -- keep the `top` strongest neighbours
  redis.call('ZREMRANGEBYRANK', key, 0, -(top + 1))
end

for n, pid in ipairs(pids) do
  redis.call('ZINCRBY', KEYS[9 + 3 * (n - 1)], trend, pid)
end
if user ~= '0' then
  -- viewed/bought together: this event's items with the shopper's items of the window
  local since = at - window
  local recent = redis.call('ZRANGE', KEYS[2], since, '+inf', 'BYSCORE')
  for n, pid in ipairs(pids) do
    local covis = KEYS[7 + 3 * (n - 1)]
    for _, q in ipairs(recent) do
      if q ~= pid then
        redis.call('ZINCRBY', covis, w, q)
        local qi = nil
        for m, p in ipairs(pids) do if p == q then qi = m end end
        if qi == nil then
          redis.call('ZINCRBY', 'recs:covis:' .. q, w, pid)
          trim('recs:covis:' .. q)
        end
      end
    end
    trim(covis)
  end
  if kind == 'order' then
    local bought = redis.call('ZRANGE', KEYS[3], since, '+inf', 'BYSCORE')
    for n, pid in ipairs(pids) do
      local cobuy = KEYS[8 + 3 * (n - 1)]
      for m, q in ipairs(pids) do
        if m ~= n then redis.call('ZINCRBY', cobuy, 1, q) end
      end
      for _, q in ipairs(bought) do
        if q ~= pid then
          redis.call('ZINCRBY', cobuy, 1, q)
          redis.call('ZINCRBY', 'recs:cobuy:' .. q, 1, pid)
          trim('recs:cobuy:' .. q)
        end
      end
      trim(cobuy)
      redis.call('ZADD', KEYS[3], at, pid)
      redis.call('SADD', KEYS[4], pid)
    end
    redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(recent_max + 1))
    redis.call('EXPIRE', KEYS[3], ttl)
    redis.call('EXPIRE', KEYS[4], ttl)
    redis.call('SET', KEYS[5], user .. ':' .. table.concat(pids, ','), 'EX', ttl)
  end
  for _, pid in ipairs(pids) do redis.call('ZADD', KEYS[2], at, pid) end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(recent_max + 1))
  redis.call('EXPIRE', KEYS[2], ttl)
end
-- the offline store's recent window: what `train` reads
for _, pid in ipairs(pids) do
  log_append(KEYS[6], maxlen, 'u', user, 'p', pid, 't', ARGV[2], 'k', kind)
end
return 1
