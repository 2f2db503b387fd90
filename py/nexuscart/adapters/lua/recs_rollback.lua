-- Go back to the version active before the current one (adapters/recs_registry.py).
-- KEYS: recs:model:active, recs:model:history. Returns the version now active, or '' when
-- there is none to go back to (nothing changes then).
local previous = redis.call('LPOP', KEYS[2])
if not previous then return '' end
redis.call('SET', KEYS[1], previous)
return previous
