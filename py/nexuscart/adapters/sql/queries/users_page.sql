-- Admin listing by user id ascending after a cursor. Reads every shard (an admin page, not
-- a shopper path); the email filter goes through user_emails instead (user_email_lookup).
-- $1 cursor (user_id >) or NULL, $2 limit
SELECT user_id, email, display_name, roles, disabled, created_at, updated_at
FROM users
WHERE password_hash IS NOT NULL AND ($1::bigint IS NULL OR user_id > $1)
ORDER BY user_id
LIMIT $2
