-- End every session of a user except ``keep`` (a family id, or '' for none). The family keys
-- are built from the user's hash tag, so they share the slot of KEYS[1].
-- KEYS: 1 the user's family set   ARGV: 1 family key prefix, 2 keep
-- Returns how many sessions ended.
local n = 0
for _, fid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if fid ~= ARGV[2] then
    n = n + redis.call('DEL', ARGV[1] .. fid)
    redis.call('SREM', KEYS[1], fid)
  end
end
return n
