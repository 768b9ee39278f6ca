-- Not a migration: the repair of a store that a development build of 2026-11-29
-- (e8cd7fd, reverted by the next commit) migrated with an earlier version 5, which
-- moved the users into a rowid table keyed by a number (users_by_id, with a unique
-- index users_by_uid). It puts them back into the table of 0003_compact_users.sql,
-- then does what 0005_token_roots.sql does.
CREATE TABLE users_by_site (
	site          INTEGER NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
	uid           TEXT NOT NULL,
	nickname      TEXT,
	photo_url     TEXT,
	thumbnail_url TEXT,
	first_name    TEXT,
	last_name     TEXT,
	gender        TEXT,
	age           TEXT, -- decimal, as socius.Field.Validate normalizes it
	email         TEXT,
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL, -- when the profile last changed
	login_at      INTEGER,          -- NULL: never logged in
	logged_in     INTEGER NOT NULL, -- 0 or 1
	PRIMARY KEY (site, uid)
) WITHOUT ROWID;

INSERT INTO users_by_site (site, uid, nickname, photo_url, thumbnail_url, first_name, last_name,
		gender, age, email, created_at, updated_at, login_at, logged_in)
	SELECT site, uid, nickname, photo_url, thumbnail_url, first_name, last_name,
		gender, age, email, created_at, updated_at, login_at, logged_in
	FROM users;

DROP TABLE users;
ALTER TABLE users_by_site RENAME TO users;

ALTER TABLE tokens ADD COLUMN root TEXT;
CREATE INDEX tokens_live_by_root ON tokens (root) WHERE root IS NOT NULL AND revoked_at IS NULL;
