-- Make a model version the active one (adapters/recs_registry.py). KEYS: recs:model:active,
-- recs:model:history; ARGV: the version. The version it replaces goes on top of the history
-- (rollback pops it); promoting the active version again changes nothing.
-- Returns the version it replaced ('' for none, or when nothing changed).
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then return '' end
if current then
  redis.call('LPUSH', KEYS[2], current)
  redis.call('LTRIM', KEYS[2], 0, 49)
end
redis.call('SET', KEYS[1], ARGV[1])
return current or ''
