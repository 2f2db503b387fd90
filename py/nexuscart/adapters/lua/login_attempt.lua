-- Count one login attempt against a brute-force counter BEFORE its password is checked, so
-- parallel attempts cannot all pass before the lock: an attempt is let through only if the
-- counter is not locked, and it counts as a failure until login_settle says otherwise.
-- Once ``free`` attempts are counted the counter locks for base * 2^(n - free) ms (at most
-- max), the same formula as domain/accounts.lock_seconds.
-- KEYS: 1 counter hash {n, until}
-- ARGV: 1 free, 2 base ms, 3 max ms, 4 window ms (forgotten after this much quiet)
-- Returns {1, n} when let through, {0, ms until the lock ends} when locked.
local now = now_ms()
local f = redis.call('HMGET', KEYS[1], 'n', 'until')
local n, until_ms = tonumber(f[1] or '0'), tonumber(f[2] or '0')
if now < until_ms then return {0, until_ms - now} end
n = n + 1
local free = tonumber(ARGV[1])
local keep = tonumber(ARGV[4])
if n >= free then
  local lock = math.min(tonumber(ARGV[3]), tonumber(ARGV[2]) * 2 ^ math.min(n - free, 40))
  until_ms = now + math.floor(lock)
  redis.call('HSET', KEYS[1], 'n', n, 'until', until_ms)
  keep = math.max(keep, until_ms - now)
else
  redis.call('HSET', KEYS[1], 'n', n)
end
redis.call('PEXPIRE', KEYS[1], keep)
return {1, n}
