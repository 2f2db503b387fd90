-- Claim a normalised email for a new user id. Single shard (by email). No row back: the
-- email is taken (the primary key decides between parallel registrations).
-- $1 email, $2 user_id
INSERT INTO user_emails (email, user_id) VALUES ($1, $2)
ON CONFLICT (email) DO NOTHING
RETURNING user_id
