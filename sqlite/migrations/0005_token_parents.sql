-- A token minted with another token (a mobile session from notifyLogin called with an
-- access or session token) names it by hash: revoking a token revokes those minted
-- with it (RevokeToken). NULL for a token minted with a site's or key's own
-- credentials, and for every token stored before this version. The index finds a
-- token's children; tokens without a parent stay out of it.
ALTER TABLE tokens ADD COLUMN parent TEXT;
CREATE INDEX tokens_by_parent ON tokens (parent) WHERE parent IS NOT NULL;
