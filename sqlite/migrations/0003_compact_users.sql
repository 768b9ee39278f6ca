-- Users keyed by a small site number instead of the site's API key, in a table without
-- rowid. Before, every user row and every entry of the primary-key index repeated the
-- API key (66 bytes for a Gigya-style key): more than half of a store of a million users
-- was copies of it, and a lookup searched the index and then the table. Now a lookup is
-- one search of one B-tree whose inner pages fit in SQLite's page cache.

-- sites.id: a site's number, unique, never NULL for a site written since this migration
-- (createSite and putSite give the next one). Existing sites take their rowid.
ALTER TABLE sites ADD COLUMN id INTEGER;
UPDATE sites SET id = rowid;
CREATE UNIQUE INDEX sites_by_id ON sites (id);

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
	SELECT sites.id, u.uid, u.nickname, u.photo_url, u.thumbnail_url, u.first_name, u.last_name,
		u.gender, u.age, u.email, u.created_at, u.updated_at, u.login_at, u.logged_in
	FROM users AS u JOIN sites ON sites.api_key = u.api_key;

DROP TABLE users;
ALTER TABLE users_by_site RENAME TO users;
