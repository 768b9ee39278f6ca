-- Deleting a key deletes the tokens issued to it (DeleteKey): without an index, a scan
-- of the whole tokens table. Tokens of a site's own credentials have no user_key and
-- stay out of the index. Built inside the migration's transaction, so token writes
-- wait for it once, on the first start of this version.
CREATE INDEX tokens_by_user_key ON tokens (user_key) WHERE user_key IS NOT NULL;
