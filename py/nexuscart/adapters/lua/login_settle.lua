-- A login attempt let through by login_attempt succeeded: the account's counter is reset
-- (ARGV[1] = 'reset'), the IP's gets its pessimistic count back (ARGV[1] = 'refund'; a
-- lock already set stays until it ends).
-- KEYS: 1 counter hash
if ARGV[1] == 'reset' then
  redis.call('DEL', KEYS[1])
  return 0
end
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
if n > 0 then redis.call('HINCRBY', KEYS[1], 'n', -1) end
return n
