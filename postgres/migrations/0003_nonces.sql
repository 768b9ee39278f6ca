-- The nonces of signed requests, shared by every server node so that a request
-- accepted by one node and replayed to another is refused. The key is the SHA-256 of
-- the credential, a NUL byte and the nonce; a row is remembered until expires_at (Unix
-- milliseconds), after which the pair may be used again and the row deleted.

CREATE TABLE nonces (
	key        BYTEA PRIMARY KEY,
	expires_at BIGINT NOT NULL
);

CREATE INDEX nonces_by_expiry ON nonces (expires_at);
