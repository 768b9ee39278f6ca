-- Sites are the tenants. Keys and users belong to a site.
-- Times are Unix milliseconds, UTC. An empty profile value is stored as NULL.

CREATE TABLE sites (
	api_key    TEXT PRIMARY KEY,
	secret     TEXT NOT NULL,
	name       TEXT NOT NULL,
	created_at INTEGER NOT NULL
);

CREATE TABLE keys (
	user_key   TEXT PRIMARY KEY,
	api_key    TEXT NOT NULL REFERENCES sites (api_key) ON DELETE CASCADE,
	secret     TEXT NOT NULL,
	methods    TEXT NOT NULL, -- comma-joined method names; empty: every method
	public_key TEXT NOT NULL, -- PEM; empty: none
	created_at INTEGER NOT NULL
);

CREATE INDEX keys_by_site ON keys (api_key, created_at);

CREATE TABLE users (
	api_key       TEXT NOT NULL REFERENCES sites (api_key) ON DELETE CASCADE,
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
	PRIMARY KEY (api_key, uid)
);
