-- Values the nodes of a deployment share. nonce_window_ms: the longest --clock-skew any
-- node has started with, in milliseconds. Every node records a nonce for that long
-- (SharedNonceWindow), so that a node with a longer timestamp window than the one that
-- accepted a request still refuses its replay.
CREATE TABLE settings (
	name  TEXT PRIMARY KEY,
	value BIGINT NOT NULL
);
