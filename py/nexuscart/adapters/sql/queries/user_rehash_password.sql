-- Replace a hash made with older parameters by one at today's, on login. Compare-and-set on
-- the old hash: a password changed meanwhile wins. Single shard (by user_id).
-- $1 user_id, $2 new hash, $3 the hash it replaces
UPDATE users SET password_hash = $2, updated_at = now()
WHERE user_id = $1 AND password_hash = $3
RETURNING user_id
