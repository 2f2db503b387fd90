-- A new user id (also drawn for a duplicate registration, whose answer carries one).
SELECT nextval('users_user_id_seq')
