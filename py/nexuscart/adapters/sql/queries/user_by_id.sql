-- One user with its password hash. Single shard (by user_id).
SELECT user_id, email, display_name, password_hash, roles, disabled, created_at, updated_at,
       password_changed_at
FROM users WHERE user_id = $1
