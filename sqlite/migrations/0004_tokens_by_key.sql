-- Deleting a key deletes the tokens issued to it (DeleteKey). Without an index that
-- was a scan of the whole tokens table inside the writer's transaction, holding up
-- every write while it ran. Tokens of a site's own credentials have no user_key and
-- stay out of the index.
CREATE INDEX tokens_by_user_key ON tokens (user_key) WHERE user_key IS NOT NULL;
