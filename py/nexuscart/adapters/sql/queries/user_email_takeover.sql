-- Move an orphaned claim (its registration died between the claim and the user row, older
-- than $3 seconds) to a new user id. Compare-and-set on the old id: one taker wins.
-- Single shard (by email). $1 email, $2 orphan user_id, $3 min age (s), $4 new user_id
UPDATE user_emails SET user_id = $4, claimed_at = now()
WHERE email = $1 AND user_id = $2 AND claimed_at < now() - make_interval(secs => $3)
RETURNING user_id
