package postgres

import "testing"

func TestZZPlan(t *testing.T) {
	s := newStore(t)
	t.Log("\n" + explain(t, s, revokeMinted, "h", 0))
	// without seqscan disabled, on a filled table
	ctx := t.Context()
	if _, err := s.pool.Exec(ctx, `INSERT INTO sites (api_key, secret, name, created_at) VALUES ('3_s','c2VjcmV0','',0)`); err != nil {
		t.Log(err)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO tokens (hash, kind, api_key, uid, created_at, parent)
		SELECT md5(i::text)||md5((i+1)::text), 'session', '3_s', 'u'||(i%1000), 0, CASE WHEN i%10=0 THEN md5((i-1)::text)||md5(i::text) END FROM generate_series(1,200000) i`)
	if err != nil {
		t.Fatal(err)
	}
	s.pool.Exec(ctx, `ANALYZE tokens`)
	rows, err := s.pool.Query(ctx, `EXPLAIN (ANALYZE, BUFFERS) `+revokeMinted, "h", 0)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var l string
		rows.Scan(&l)
		t.Log(l)
	}
}
