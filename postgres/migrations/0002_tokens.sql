-- Access and session tokens. Only the hash of a token is kept, never the token.
-- A token belongs to a site; it names its user by UID without a foreign key, so that
-- the row of a deleted user's token stays, revoked, and a client can be told so.
-- Empty values are NULL: uid (bound to no user), user_key (the partner secret),
-- expires_at (never expires), revoked_at (live).

CREATE TABLE tokens (
	hash       TEXT PRIMARY KEY, -- lower-case hex SHA-256 of the token
	kind       TEXT NOT NULL,    -- 'access' or 'session'
	api_key    TEXT NOT NULL REFERENCES sites (api_key) ON DELETE CASCADE,
	uid        TEXT,
	user_key   TEXT,
	created_at BIGINT NOT NULL,
	expires_at BIGINT,
	revoked_at BIGINT
);

-- Logout, deleteAccount and renames find the tokens of a user.
CREATE INDEX tokens_by_user ON tokens (api_key, uid);

-- Housekeeping finds the dead tokens without reading the live ones.
CREATE INDEX tokens_by_expiry ON tokens (expires_at);
CREATE INDEX tokens_by_revocation ON tokens (revoked_at);
