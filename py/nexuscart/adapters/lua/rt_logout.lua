-- End a session by one of its tokens. The current or the previous token ends the family
-- and answers 'valid' (logout-everywhere then ends the others); any other token of the
-- family is a reuse and ends it too, answering 'reused'; an unknown family 'invalid'.
-- KEYS: 1 family hash, 2 the user's family set   ARGV: 1 token hash, 2 family id
local f = redis.call('HMGET', KEYS[1], 'cur', 'prev')
if not f[1] then return 'invalid' end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[2])
if f[1] == ARGV[1] or f[2] == ARGV[1] then return 'valid' end
return 'reused'
