-- Release the training lock (adapters/recs_registry.py) only if it is still the caller's:
-- a holder whose lock expired must not delete the next holder's. KEYS: recs:train:lock;
-- ARGV: the caller's token. Returns 1 when released, 0 when it was not the caller's.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
