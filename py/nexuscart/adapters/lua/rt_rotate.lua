-- Rotate a refresh token, atomically: the presented token (by hash) must be its family's
-- current one; it becomes the previous one and the new token the current one. The previous
-- token presented again within the grace period (a client retrying after a lost response)
-- gets the same successor back, sealed with a key only that token's holder can derive.
-- Any other token of the family is a reuse: the whole family is revoked.
-- KEYS: 1 family hash, 2 the user's family set, 3 the user's record
-- ARGV: 1 presented hash, 2 new hash, 3 sealed new token, 4 grace ms, 5 ttl ms, 6 family id
-- Returns {'ok', roles} | {'replay', roles, sealed} | {'reused'} | {'invalid'} |
--         {'disabled'} | {'nouser'} (the record is gone: reload it and call again)
local user = redis.call('HMGET', KEYS[3], 'roles', 'disabled')
if not user[1] then return {'nouser'} end
local f = redis.call('HMGET', KEYS[1], 'cur', 'prev', 'at', 'sealed')
if not f[1] then return {'invalid'} end
if user[2] == '1' then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[6])
  return {'disabled'}
end
local now = now_ms()
if f[1] == ARGV[1] then
  redis.call('HSET', KEYS[1], 'cur', ARGV[2], 'prev', ARGV[1], 'at', now, 'sealed', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
  return {'ok', user[1]}
end
if f[2] == ARGV[1] and now - tonumber(f[3]) < tonumber(ARGV[4]) then
  return {'replay', user[1], f[4]}
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[6])
return {'reused'}
