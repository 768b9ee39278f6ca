package sqlite

import (
	"database/sql"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"github.com/socius/socius"
	"github.com/socius/socius/loadgen"
)

// BenchmarkUpdateProfileUsers measures the store's part of the bench's setUserInfo at
// the two sizes its issue compares, 10,000 and 1,000,000 users: durable updates of
// the nickname and firstName of random users, 64 callers at a time as the bench's 64
// connections, through the writer and its checkpointer as the server runs them. Its
// cpu-µs/op, the process's CPU time an update (the writer's, the checkpointer's and
// the callers'), is what separates a million users from 10,000 in the store, without
// HTTP, signatures or the load generator; compare the two sizes within one run:
//
//	go test -run '^$' -bench UpdateProfileUsers -benchtime 5s ./sqlite
//
// The stores are made once per run, their users written straight into the table,
// each with the profile the bench gives its users (loadgen.Profile): a million take
// some seconds.
func BenchmarkUpdateProfileUsers(b *testing.B) {
	for _, users := range []int{10_000, 1_000_000} {
		path := filepath.Join(b.TempDir(), "socius.db")
		site := fillUsers(b, path, users)
		s := open(b, path)
		b.Run("users="+strconv.Itoa(users), func(b *testing.B) {
			benchmarkRandomUpdates(b, s, site, users)
		})
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// fillUsers makes a store at path with one site and users bench-0 .. bench-(n-1),
// and returns the site's apiKey.
func fillUsers(t testing.TB, path string, n int) string {
	t.Helper()
	const apiKey = "3_bench"
	s := open(t, path)
	if err := s.CreateSite(t.Context(), &socius.Site{APIKey: apiKey, Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = db.Exec(`WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ? - 1)
		INSERT INTO users (site, uid, nickname, photo_url, thumbnail_url, first_name, last_name,
			gender, age, email, created_at, updated_at, login_at, logged_in)
		SELECT (SELECT id FROM sites WHERE api_key = ?), 'bench-' || i, 'bench-' || i,
			'https://example.com/photos/' || i || '.jpg', 'https://example.com/photos/' || i || '-t.jpg',
			'Ada', 'Lovelace', 'f', CAST(18 + i % 60 AS TEXT), 'bench-' || i || '@example.com',
			?, ?, ?, 1
		FROM n`, n, apiKey, now.UnixMilli(), now.UnixMilli(), now.UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	var count int
	if err := db.QueryRow(`SELECT count(*) FROM users`).Scan(&count); err != nil || count != n {
		t.Fatalf("the store holds %d users, want %d (%v)", count, n, err)
	}
	if _, err := db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	return apiKey
}

// TestFillUsers: the users BenchmarkUpdateProfileUsers writes straight into the table
// are what the store reads, with the bench's profile (loadgen.Profile), and update as
// the benchmark updates them.
func TestFillUsers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "socius.db")
	site := fillUsers(t, path, 1000)
	s := open(t, path)
	defer s.Close()
	u, err := s.User(t.Context(), site, "bench-999")
	want := loadgen.Profile(999)
	if err != nil || u.Profile != want || !u.LoggedIn {
		t.Fatalf("User(bench-999) = %+v, %v; want the profile %q, logged in", u, err, want)
	}
	if _, err := s.User(t.Context(), site, "bench-1000"); !errors.Is(err, socius.ErrNotFound) {
		t.Errorf("User(bench-1000): %v, want not found", err)
	}
	var p socius.Patch
	p.Set(socius.FirstName, "Grace")
	if err := s.UpdateProfile(t.Context(), site, "bench-0", &p, now); err != nil {
		t.Fatal(err)
	}
	if u, err := s.User(t.Context(), site, "bench-0"); err != nil || u.Profile[socius.FirstName] != "Grace" {
		t.Errorf("after an update: %+v, %v", u, err)
	}
}

// firstNames are what benchmarkRandomUpdates writes, by turns.
var firstNames = []string{"Ada", "Grace", "Edsger", "Barbara", "Donald"}

// benchmarkRandomUpdates updates random users of s, 64 callers at a time, and
// reports the process's CPU time an update.
func benchmarkRandomUpdates(b *testing.B, s *Store, site string, users int) {
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, measured := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
		var p socius.Patch
		for i := 0; pb.Next(); i++ {
			uid := "bench-" + strconv.Itoa(r.IntN(users))
			p.Set(socius.Nickname, uid)
			p.Set(socius.FirstName, firstNames[i%len(firstNames)])
			if err := s.UpdateProfile(b.Context(), site, uid, &p, now); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if cpu1, ok := cpuTime(); measured && ok {
		b.ReportMetric(float64(cpu1-cpu0)/float64(b.N)/1e3, "cpu-µs/op")
	}
}
