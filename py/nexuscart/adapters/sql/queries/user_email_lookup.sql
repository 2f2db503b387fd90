-- The user id of a normalised email, and when it was claimed. Single shard (by email).
SELECT user_id, claimed_at FROM user_emails WHERE email = $1
