-- A new user. Single shard (by user_id); the same transaction writes its UserRegistered
-- outbox row (users_outbox_insert).
-- RETURNING only plain columns: Citus refuses non-IMMUTABLE functions there.
-- $1 user_id, $2 email, $3 display_name, $4 password_hash, $5 roles
INSERT INTO users (user_id, email, display_name, password_hash, roles, password_changed_at)
VALUES ($1, $2, $3, $4, $5, now())
RETURNING user_id, email, display_name, roles, disabled, created_at, updated_at
