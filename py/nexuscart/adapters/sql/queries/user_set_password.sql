-- Replace a password hash; $3 the hash it replaces (a rehash on login must not overwrite a
-- password changed meanwhile), NULL for a password change. Single shard (by user_id).
-- $1 user_id, $2 new hash, $3 expected old hash or NULL, $4 true for a password change
UPDATE users SET password_hash = $2, updated_at = now(),
       password_changed_at = CASE WHEN $4 THEN now() ELSE password_changed_at END
WHERE user_id = $1 AND ($3::text IS NULL OR password_hash = $3)
RETURNING user_id
