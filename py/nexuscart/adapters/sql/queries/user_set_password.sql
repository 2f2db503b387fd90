-- A password change: the new hash, and when it changed. Single shard (by user_id).
-- (Two statements rather than one with CASE: Citus refuses now() inside CASE.)
-- $1 user_id, $2 new hash
UPDATE users SET password_hash = $2, updated_at = now(), password_changed_at = now()
WHERE user_id = $1
RETURNING user_id
