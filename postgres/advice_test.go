package postgres

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestConnectionAdvice: a URL that lets the store reach a database on another machine
// without checking its certificate is advised against, naming the hosts; one that
// checks it (verify-ca, verify-full), or reaches this machine (a Unix socket,
// localhost, a loopback address), is not. pgx's default, sslmode=prefer, is among the
// first: it takes any certificate, and plain text when TLS is not offered.
func TestConnectionAdvice(t *testing.T) {
	for _, tt := range []struct {
		url   string
		hosts string // "" for no advice
	}{
		{"postgres://u:p@db.internal:5432/socius", "db.internal"},
		{"postgres://u:p@db.internal/socius?sslmode=prefer", "db.internal"},
		{"postgres://u:p@db.internal/socius?sslmode=disable", "db.internal"},
		{"postgres://u:p@db.internal/socius?sslmode=allow", "db.internal"},
		{"postgres://u:p@db.internal/socius?sslmode=require", "db.internal"},
		{"postgres://u:p@10.0.0.5/socius?sslmode=require", "10.0.0.5"},
		{"postgres://u:p@a.internal,b.internal/socius?sslmode=require", "a.internal, b.internal"},
		{"postgres://u:p@db.internal/socius?sslmode=verify-full", ""},
		{"postgres://u:p@db.internal/socius?sslmode=verify-ca", ""},
		{"postgres://u:p@a.internal,b.internal/socius?sslmode=verify-full", ""},
		{"postgres://u:p@localhost/socius", ""},
		{"postgres://u:p@127.0.0.1:5432/socius?sslmode=disable", ""},
		{"postgres://u:p@[::1]:5432/socius", ""},
		{"postgres://u@/socius?host=/run/postgresql", ""},
		{"postgres://u:p@localhost,db.internal/socius?sslmode=disable", "db.internal"},
	} {
		cc, err := pgconn.ParseConfig(tt.url)
		if err != nil {
			t.Fatalf("%s: %v", tt.url, err)
		}
		got := connectionAdvice(cc)
		switch {
		case tt.hosts == "" && got != "":
			t.Errorf("%s: advice %q, want none", tt.url, got)
		case tt.hosts != "" && !strings.HasPrefix(got, "the connection to "+tt.hosts+" does not check the database server's certificate"):
			t.Errorf("%s: advice %q, want one naming %s", tt.url, got, tt.hosts)
		case strings.Contains(got, ":p@") || strings.Contains(got, "u:p"):
			t.Errorf("%s: advice %q holds the password", tt.url, got)
		}
	}
}
