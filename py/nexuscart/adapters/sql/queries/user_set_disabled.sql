-- Disable or enable a user. Single shard (by user_id). $1 user_id, $2 disabled
UPDATE users SET disabled = $2, updated_at = now() WHERE user_id = $1
RETURNING user_id, email, display_name, roles, disabled, created_at, updated_at
