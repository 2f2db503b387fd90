-- Keep the training lock (adapters/recs_registry.py) for another ARGV[2] ms, only if it is
-- still the caller's. KEYS: recs:train:lock; ARGV: the caller's token, the time to live.
-- Returns 1 when kept, 0 when it was not the caller's (it expired, or is another's).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
