-- Not a migration: the repair of a store that a development build of 2026-11-29
-- (64755d8 to 3a98cbb^) migrated with an earlier version 5, which recorded for each
-- minted token its parent (the token it was minted with) where 0005_token_roots.sql
-- records the token at the top of its chain. It leaves the store as that migration
-- would have, the roots found by following the parents up; a token whose parent is
-- gone (its user deleted) takes that parent as its root. The parent column and its
-- index stay, unused and empty for every token stored from now on.
ALTER TABLE tokens ADD COLUMN root TEXT;
WITH RECURSIVE chain (hash, top) AS (
	SELECT t.hash, COALESCE(t.parent, t.hash) FROM tokens AS t
	WHERE t.parent IS NULL OR NOT EXISTS (SELECT 1 FROM tokens AS p WHERE p.hash = t.parent)
	UNION ALL
	SELECT t.hash, chain.top FROM tokens AS t JOIN chain ON t.parent = chain.hash
)
UPDATE tokens SET root = (SELECT top FROM chain WHERE chain.hash = tokens.hash)
WHERE parent IS NOT NULL;
CREATE INDEX tokens_live_by_root ON tokens (root) WHERE root IS NOT NULL AND revoked_at IS NULL;
