-- A new session (refresh-token family) at login, and the user's record as PostgreSQL has
-- it now (what refreshes read instead of PostgreSQL). Every key shares the user's hash tag.
-- KEYS: 1 family hash, 2 the user's family set, 3 the user's record
-- ARGV: 1 token hash, 2 ttl ms, 3 family id, 4 roles (comma-separated), 5 disabled (0/1)
redis.call('HSET', KEYS[1], 'cur', ARGV[1], 'prev', '', 'at', now_ms(), 'sealed', '')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[3], 'roles', ARGV[4], 'disabled', ARGV[5])
return 1
