-- Update the profile fields a user may change. Single shard (by user_id).
-- $1 user_id, $2 display_name
UPDATE users SET display_name = $2, updated_at = now() WHERE user_id = $1
RETURNING user_id, email, display_name, roles, disabled, created_at, updated_at
