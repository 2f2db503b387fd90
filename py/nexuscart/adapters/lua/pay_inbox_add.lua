-- Record one verified provider webhook in the payments inbox stream (applied to PostgreSQL
-- later by the payments service, which deletes each entry once its transaction committed).
-- Redis runs with appendfsync always: the reply comes after the entry is on disk.
-- KEYS: 1 inbox stream   ARGV: 1 most entries the inbox may hold, 2 the encoded change
-- Returns 1 when recorded, 0 when the inbox is full (the service is far behind: the
-- provider is told to retry later, nothing is recorded).
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
entry_append(KEYS[1], 'c', ARGV[2])
return 1
