-- Users in a rowid table whose rowid is a number derived from the site's API key and
-- the UID (socius_user_id, sqlite/userid.go), with a unique index on (site, uid).
-- Keyed by (site, uid) without rowid, SQLite kept the table as an index b-tree whose
-- cells are whole rows: five levels for a million users, its inner pages (7 MB) more
-- than a connection's page cache, each step a comparison of two columns. Keyed by an
-- integer, the table is three levels whose inner pages fit; a profile update finds
-- its row by one search and does not touch the index.

CREATE TABLE users_by_id (
	id            INTEGER PRIMARY KEY, -- socius_user_id(api key, uid), unless it was taken
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
	logged_in     INTEGER NOT NULL  -- 0 or 1
);

-- In the order of the numbers, so that the table is written from left to right.
-- A user whose number another took first is skipped here, and placed below.
INSERT OR IGNORE INTO users_by_id (id, site, uid, nickname, photo_url, thumbnail_url, first_name,
		last_name, gender, age, email, created_at, updated_at, login_at, logged_in)
	SELECT socius_user_id(s.api_key, u.uid) AS n, u.site, u.uid, u.nickname, u.photo_url,
		u.thumbnail_url, u.first_name, u.last_name, u.gender, u.age, u.email, u.created_at,
		u.updated_at, u.login_at, u.logged_in
	FROM users AS u JOIN sites AS s ON s.id = u.site
	ORDER BY n;

CREATE UNIQUE INDEX users_by_uid ON users_by_id (site, uid);

INSERT INTO users_by_id (site, uid, nickname, photo_url, thumbnail_url, first_name, last_name,
		gender, age, email, created_at, updated_at, login_at, logged_in)
	SELECT u.site, u.uid, u.nickname, u.photo_url, u.thumbnail_url, u.first_name, u.last_name,
		u.gender, u.age, u.email, u.created_at, u.updated_at, u.login_at, u.logged_in
	FROM users AS u
	WHERE NOT EXISTS (SELECT 1 FROM users_by_id AS n WHERE n.site = u.site AND n.uid = u.uid);

DROP TABLE users;
ALTER TABLE users_by_id RENAME TO users;
