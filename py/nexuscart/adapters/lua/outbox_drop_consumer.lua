-- Delete a relay's consumer from an outbox stream's group, only if it holds no entries:
-- checked and done in one step, so an entry it has just been given is never dropped with it.
-- KEYS: 1 outbox stream   ARGV: 1 group, 2 consumer
-- Returns 1 when deleted, 0 when it still holds entries (or is already gone).
local held = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #held > 0 then return 0 end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
