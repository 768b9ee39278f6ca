-- A token minted from another (a mobile session made by notifyLogin called with an
-- access or session token) names the token at the top of that chain by hash: revoking
-- a token revokes every token whose root it is (RevokeToken). NULL for a token made
-- with a site's or key's own credentials, and for every token stored before this
-- version. The index holds only live minted tokens, so that a revocation finds those
-- still to revoke without stepping over those it revoked. Built inside the migration's
-- transaction, after the ALTER TABLE, whose exclusive lock it keeps: token reads and
-- writes wait for it once (every existing row has no root, but the table is read
-- once), on the first start of this version (docs/postgresql.md, "Migrations").
ALTER TABLE tokens ADD COLUMN root TEXT;
CREATE INDEX tokens_live_by_root ON tokens (root) WHERE root IS NOT NULL AND revoked_at IS NULL;
