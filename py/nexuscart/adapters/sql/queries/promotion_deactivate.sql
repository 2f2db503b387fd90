-- Deactivate a promotion (for good; idempotent). $1 code
UPDATE promotions SET active = false WHERE code = $1
RETURNING code
