package sealed_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/sealed"
	"github.com/socius/socius/sqlite"
	"github.com/socius/socius/storetest"
)

var now = time.Date(2026, time.November, 28, 10, 30, 0, 0, time.UTC)

const (
	siteSecret = "c2l0ZS1zZWNyZXQtMDEyMzQ1Njc4OWFi"
	keySecret  = "a2V5LXNlY3JldC0wMTIzNDU2Nzg5YWJj"
)

func openSQLite(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func wrap(t *testing.T, st socius.Store, key []byte) *sealed.Store {
	t.Helper()
	s, err := sealed.New(st, key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The sealed store keeps the whole store contract.
func TestStoreContract(t *testing.T) {
	key := sealed.NewKey()
	storetest.Run(t, func(t *testing.T) socius.Store {
		return wrap(t, openSQLite(t, filepath.Join(t.TempDir(), "socius.db")), key)
	})
}

func TestSecretsAreSealedAtRest(t *testing.T) {
	ctx := context.Background()
	raw := openSQLite(t, filepath.Join(t.TempDir(), "socius.db"))
	defer raw.Close()
	st := wrap(t, raw, sealed.NewKey())
	site := &socius.Site{APIKey: "3_a", Secret: siteSecret, Name: "a", CreatedAt: now}
	if err := st.CreateSite(ctx, site); err != nil {
		t.Fatal(err)
	}
	if site.Secret != siteSecret {
		t.Fatal("CreateSite changed the caller's site")
	}
	if err := st.CreateKey(ctx, &socius.Key{UserKey: "Ak", APIKey: "3_a", Secret: keySecret, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	// Through the sealed store: the secrets as written.
	if s, err := st.Site(ctx, "3_a"); err != nil || s.Secret != siteSecret {
		t.Fatalf("Site: %v %v", s, err)
	}
	if k, err := st.Key(ctx, "Ak"); err != nil || k.Secret != keySecret {
		t.Fatalf("Key: %v %v", k, err)
	}
	// Underneath: sealed, and a fresh nonce every time (same secret, other text).
	rs, _ := raw.Site(ctx, "3_a")
	rk, _ := raw.Key(ctx, "Ak")
	for _, stored := range []string{rs.Secret, rk.Secret} {
		if !strings.HasPrefix(stored, sealed.Prefix) || strings.Contains(stored, siteSecret) || strings.Contains(stored, keySecret) {
			t.Errorf("stored secret %q is not sealed", stored)
		}
	}
	if err := st.PutSite(ctx, &socius.Site{APIKey: "3_a", Secret: siteSecret, Name: "a"}); err != nil {
		t.Fatal(err)
	}
	if rs2, _ := raw.Site(ctx, "3_a"); rs2.Secret == rs.Secret {
		t.Error("sealing the same secret twice gave the same text")
	}
	if ok, err := sealed.HoldsSealed(ctx, raw); !ok || err != nil {
		t.Errorf("HoldsSealed = %v, %v", ok, err)
	}
}

func TestWrongKey(t *testing.T) {
	ctx := context.Background()
	raw := openSQLite(t, filepath.Join(t.TempDir(), "socius.db"))
	defer raw.Close()
	if err := wrap(t, raw, sealed.NewKey()).CreateSite(ctx, &socius.Site{APIKey: "3_a", Secret: siteSecret, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	other := wrap(t, raw, sealed.NewKey())
	err := other.Verify(ctx)
	if !errors.Is(err, sealed.ErrWrongKey) || !strings.Contains(err.Error(), "3_a") {
		t.Errorf("Verify with another key: %v", err)
	}
	if _, err := other.Site(ctx, "3_a"); !errors.Is(err, sealed.ErrWrongKey) {
		t.Errorf("Site with another key: %v", err)
	}
}

func TestMovedCiphertextDoesNotOpen(t *testing.T) {
	ctx := context.Background()
	raw := openSQLite(t, filepath.Join(t.TempDir(), "socius.db"))
	defer raw.Close()
	st := wrap(t, raw, sealed.NewKey())
	if err := st.CreateSite(ctx, &socius.Site{APIKey: "3_a", Secret: siteSecret, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	rs, _ := raw.Site(ctx, "3_a")
	if err := raw.CreateSite(ctx, &socius.Site{APIKey: "3_b", Secret: rs.Secret, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Site(ctx, "3_b"); !errors.Is(err, sealed.ErrWrongKey) {
		t.Errorf("a secret copied from site 3_a opened for 3_b: %v", err)
	}
	// Tampering with the text is caught the same way.
	if err := raw.PutSite(ctx, &socius.Site{APIKey: "3_a", Secret: rs.Secret[:len(rs.Secret)-4] + "AAA="}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Site(ctx, "3_a"); !errors.Is(err, sealed.ErrWrongKey) {
		t.Errorf("an altered secret opened: %v", err)
	}
	// So is a value cut shorter than a nonce and a tag: an error, not a panic.
	for _, cut := range []string{sealed.Prefix, sealed.Prefix + "AAAA", rs.Secret[:len(sealed.Prefix)+20]} {
		if err := raw.PutSite(ctx, &socius.Site{APIKey: "3_a", Secret: cut}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Site(ctx, "3_a"); !errors.Is(err, sealed.ErrWrongKey) {
			t.Errorf("a secret cut to %q: %v", cut, err)
		}
	}
}

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	raw := openSQLite(t, filepath.Join(t.TempDir(), "socius.db"))
	defer raw.Close()
	// Written before encryption was enabled.
	if err := raw.CreateSite(ctx, &socius.Site{APIKey: "3_a", Secret: siteSecret, Name: "old", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := raw.CreateKey(ctx, &socius.Key{UserKey: "Ak", APIKey: "3_a", Secret: keySecret, Methods: []string{"socialize.getUserInfo"}, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := sealed.HoldsSealed(ctx, raw); ok {
		t.Fatal("HoldsSealed on a plain store")
	}
	st := wrap(t, raw, sealed.NewKey())
	// Plain secrets still read.
	if s, err := st.Site(ctx, "3_a"); err != nil || s.Secret != siteSecret {
		t.Fatalf("plain site through the sealed store: %v %v", s, err)
	}
	if err := st.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	plain, previous, err := st.Migrate(ctx)
	if err != nil || plain != 2 || previous != 0 {
		t.Fatalf("Migrate = %d, %d, %v; want 2 plain", plain, previous, err)
	}
	if plain, previous, err := st.Migrate(ctx); err != nil || plain+previous != 0 {
		t.Errorf("second Migrate = %d, %d, %v; want 0", plain, previous, err)
	}
	rs, _ := raw.Site(ctx, "3_a")
	rk, _ := raw.Key(ctx, "Ak")
	if !sealed.IsSealed(rs.Secret) || !sealed.IsSealed(rk.Secret) {
		t.Errorf("after Migrate: %q %q", rs.Secret, rk.Secret)
	}
	// Everything else is as it was.
	s, _ := st.Site(ctx, "3_a")
	k, err := st.Key(ctx, "Ak")
	if err != nil || s.Secret != siteSecret || s.Name != "old" || !s.CreatedAt.Equal(now) ||
		k.Secret != keySecret || k.APIKey != "3_a" || len(k.Methods) != 1 || !k.CreatedAt.Equal(now) {
		t.Errorf("after Migrate: %+v %+v", s, k)
	}
}

// TestChangeKey: a store given the old master key as a previous one opens the secrets
// it sealed, seals new ones with the current key, and Migrate moves the rest over;
// then the current key alone opens everything, and the old one nothing.
func TestChangeKey(t *testing.T) {
	ctx := context.Background()
	raw := openSQLite(t, filepath.Join(t.TempDir(), "socius.db"))
	defer raw.Close()
	oldKey, newKey := sealed.NewKey(), sealed.NewKey()
	old := wrap(t, raw, oldKey)
	if err := old.CreateSite(ctx, &socius.Site{APIKey: "3_a", Secret: siteSecret, Name: "a", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := old.CreateKey(ctx, &socius.Key{UserKey: "Ak", APIKey: "3_a", Secret: keySecret, Methods: []string{"socialize.getUserInfo"}, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := sealed.New(raw, newKey, []byte("short")); err == nil {
		t.Error("New accepted a previous key of 5 bytes")
	}
	if err := wrap(t, raw, newKey).Verify(ctx); !errors.Is(err, sealed.ErrWrongKey) {
		t.Fatalf("the new key alone before Migrate: %v", err)
	}
	if both, err := sealed.New(raw, newKey, sealed.NewKey()); err != nil || !errors.Is(both.Verify(ctx), sealed.ErrWrongKey) {
		t.Errorf("with a previous key that is not the old one: %v", err)
	}

	both, err := sealed.New(raw, newKey, oldKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := both.Verify(ctx); err != nil {
		t.Fatalf("Verify with the old key as a previous one: %v", err)
	}
	if s, err := both.Site(ctx, "3_a"); err != nil || s.Secret != siteSecret {
		t.Fatalf("Site: %v %v", s, err)
	}
	// A secret written now is sealed with the current key.
	if err := both.CreateSite(ctx, &socius.Site{APIKey: "3_b", Secret: keySecret, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if s, err := wrap(t, raw, newKey).Site(ctx, "3_b"); err != nil || s.Secret != keySecret {
		t.Errorf("a site written with both keys, read with the new one: %v %v", s, err)
	}
	rs, _ := raw.Site(ctx, "3_a")
	if plain, previous, err := both.Migrate(ctx); err != nil || plain != 0 || previous != 2 {
		t.Fatalf("Migrate = %d, %d, %v; want 2 under the previous key (3_a and Ak)", plain, previous, err)
	}
	if plain, previous, err := both.Migrate(ctx); err != nil || plain+previous != 0 {
		t.Errorf("second Migrate = %d, %d, %v; want 0", plain, previous, err)
	}
	if rs2, _ := raw.Site(ctx, "3_a"); !sealed.IsSealed(rs2.Secret) || rs2.Secret == rs.Secret {
		t.Errorf("3_a's stored secret after Migrate: %q (before: %q)", rs2.Secret, rs.Secret)
	}
	current := wrap(t, raw, newKey)
	if err := current.Verify(ctx); err != nil {
		t.Fatalf("the new key alone after Migrate: %v", err)
	}
	s, _ := current.Site(ctx, "3_a")
	k, err := current.Key(ctx, "Ak")
	if err != nil || s.Secret != siteSecret || s.Name != "a" || !s.CreatedAt.Equal(now) ||
		k.Secret != keySecret || k.APIKey != "3_a" || len(k.Methods) != 1 || !k.CreatedAt.Equal(now) {
		t.Errorf("after Migrate: %+v %+v %v", s, k, err)
	}
	if err := old.Verify(ctx); !errors.Is(err, sealed.ErrWrongKey) {
		t.Errorf("the old key after Migrate: %v", err)
	}
	if plain, previous, err := current.Migrate(ctx); err != nil || plain+previous != 0 {
		t.Errorf("Migrate without previous keys = %d, %d, %v", plain, previous, err)
	}
}

func TestParseKey(t *testing.T) {
	k := sealed.NewKey()
	for _, text := range []string{sealed.EncodeKey(k), " " + sealed.EncodeKey(k) + "\n"} {
		got, err := sealed.ParseKey(text)
		if err != nil || string(got) != string(k) {
			t.Errorf("ParseKey(%q) = %v", text, err)
		}
	}
	for _, bad := range []string{"", "not base64!", "c2hvcnQ="} {
		_, err := sealed.ParseKey(bad)
		if err == nil {
			t.Errorf("ParseKey(%q) accepted", bad)
		} else if bad != "" && strings.Contains(err.Error(), bad) {
			t.Errorf("the error repeats the key text: %v", err)
		}
	}
	// The count of what a short key decodes to, in words that fit it.
	for text, want := range map[string]string{"QQ==": "decodes to 1 byte (", "c2hvcnQ=": "decodes to 5 bytes ("} {
		if _, err := sealed.ParseKey(text); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseKey(%q): %v; want it to say %q", text, err, want)
		}
	}
}

func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "master.key")
	// Racing creators: exactly one wins; every one ends with the winner's key.
	var wg sync.WaitGroup
	keys := make([][]byte, 8)
	wins := make([]bool, 8)
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := sealed.CreateKeyFile(path)
			if errors.Is(err, fs.ErrExist) {
				k, err = sealed.ReadKeyFile(path)
			} else if err == nil {
				wins[i] = true
			}
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		}()
	}
	wg.Wait()
	n := 0
	for i := range keys {
		if wins[i] {
			n++
		}
		if string(keys[i]) != string(keys[0]) || len(keys[i]) != sealed.KeySize {
			t.Errorf("creator %d ended with another key", i)
		}
	}
	if n != 1 {
		t.Errorf("%d creators won", n)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode: %v %v", fi.Mode(), err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".master.key-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// meddler is a store whose first secret swap first lets another writer act: a key
// deleted, or a key's secret rotated, while a migration runs.
type meddler struct {
	*sqlite.Store
	once   sync.Once
	meddle func()
}

func (m *meddler) SwapKeySecret(ctx context.Context, userKey, old, new string) (bool, error) {
	m.once.Do(m.meddle)
	return m.Store.SwapKeySecret(ctx, userKey, old, new)
}

// TestMigrateLeavesChangesMadeMeanwhile: a key deleted, or a key's secret rotated (by
// another node, an admin command) while a migration to a new master key runs, stays
// deleted, or keeps its new secret. Writing each secret back whole (PutKey, an upsert)
// stored the deleted key again and undid the rotation.
func TestMigrateLeavesChangesMadeMeanwhile(t *testing.T) {
	ctx := context.Background()
	oldKey, newKey := sealed.NewKey(), sealed.NewKey()
	raw := openSQLite(t, filepath.Join(t.TempDir(), "socius.db"))
	defer raw.Close()
	before := wrap(t, raw, oldKey)
	if err := before.CreateSite(ctx, &socius.Site{APIKey: "3_a", Secret: siteSecret, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	for _, uk := range []string{"Ak1", "Ak2", "Ak3"} {
		if err := before.CreateKey(ctx, &socius.Key{UserKey: uk, APIKey: "3_a", Secret: keySecret, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	const rotated = "cm90YXRlZC1rZXktc2VjcmV0LTAxMjM0"
	m := &meddler{Store: raw}
	st, err := sealed.New(m, newKey, oldKey)
	if err != nil {
		t.Fatal(err)
	}
	m.meddle = func() {
		if err := raw.DeleteKey(ctx, "Ak2"); err != nil {
			t.Error(err)
		}
		if err := st.PutKey(ctx, &socius.Key{UserKey: "Ak3", APIKey: "3_a", Secret: rotated, CreatedAt: now}); err != nil {
			t.Error(err)
		}
	}
	plain, previous, err := st.Migrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if plain != 0 || previous != 2 { // the site and Ak1; Ak2 went, Ak3 was rotated meanwhile
		t.Errorf("Migrate moved %d plain and %d previous secrets, want 0 and 2", plain, previous)
	}
	if _, err := raw.Key(ctx, "Ak2"); !errors.Is(err, socius.ErrNotFound) {
		t.Errorf("the key deleted during the migration: %v, want it gone", err)
	}
	if k, err := st.Key(ctx, "Ak3"); err != nil || k.Secret != rotated {
		t.Errorf("the key rotated during the migration: %+v %v", k, err)
	}
	// The rest opens with the new key alone.
	alone := wrap(t, raw, newKey)
	if err := alone.Verify(ctx); err != nil {
		t.Errorf("Verify with the new key alone: %v", err)
	}
}

func (m *meddler) SwapSiteSecret(ctx context.Context, apiKey, old, new string) (bool, error) {
	m.once.Do(m.meddle)
	return m.Store.SwapSiteSecret(ctx, apiKey, old, new)
}

// TestRotateLeavesChangesMadeMeanwhile: a key rotation (socius key rotate-secret) that
// meets the key deleted since it read it leaves it deleted, and one that meets another
// rotation says so and leaves that rotation's secret; written whole (PutKey, an upsert)
// the deleted key came back and the other rotation was lost without a word.
func TestRotateLeavesChangesMadeMeanwhile(t *testing.T) {
	ctx := context.Background()
	key := sealed.NewKey()
	raw := openSQLite(t, filepath.Join(t.TempDir(), "socius.db"))
	defer raw.Close()
	plain := wrap(t, raw, key)
	if err := plain.CreateSite(ctx, &socius.Site{APIKey: "3_a", Secret: siteSecret, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	for _, uk := range []string{"Ak1", "Ak2"} {
		if err := plain.CreateKey(ctx, &socius.Key{UserKey: uk, APIKey: "3_a", Secret: keySecret, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	const mine, theirs = "bWluZS1yb3RhdGlvbi1zZWNyZXQtMDEyMzQ1", "dGhlaXItcm90YXRpb24tc2VjcmV0LTAxMjM0"
	rotate := func(meddle func(), do func(st *sealed.Store) error) error {
		m := &meddler{Store: raw, meddle: meddle}
		st, err := sealed.New(m, key)
		if err != nil {
			t.Fatal(err)
		}
		return do(st)
	}
	err := rotate(func() {
		if err := raw.DeleteKey(ctx, "Ak1"); err != nil {
			t.Error(err)
		}
	}, func(st *sealed.Store) error { return st.RotateKeySecret(ctx, "Ak1", mine) })
	if !errors.Is(err, socius.ErrNotFound) {
		t.Errorf("rotating a key deleted meanwhile: %v, want not found", err)
	}
	if _, err := raw.Key(ctx, "Ak1"); !errors.Is(err, socius.ErrNotFound) {
		t.Errorf("the key deleted during its rotation: %v, want it gone", err)
	}
	err = rotate(func() {
		if err := plain.PutKey(ctx, &socius.Key{UserKey: "Ak2", APIKey: "3_a", Secret: theirs, CreatedAt: now}); err != nil {
			t.Error(err)
		}
	}, func(st *sealed.Store) error { return st.RotateKeySecret(ctx, "Ak2", mine) })
	if !errors.Is(err, sealed.ErrChangedMeanwhile) {
		t.Errorf("rotating a key rotated meanwhile: %v, want ErrChangedMeanwhile", err)
	}
	if k, err := plain.Key(ctx, "Ak2"); err != nil || k.Secret != theirs {
		t.Errorf("the other rotation's secret: %+v %v", k, err)
	}
	err = rotate(func() {
		if err := plain.PutSite(ctx, &socius.Site{APIKey: "3_a", Secret: theirs, CreatedAt: now}); err != nil {
			t.Error(err)
		}
	}, func(st *sealed.Store) error { return st.RotateSiteSecret(ctx, "3_a", mine) })
	if !errors.Is(err, sealed.ErrChangedMeanwhile) {
		t.Errorf("rotating a site rotated meanwhile: %v, want ErrChangedMeanwhile", err)
	}
	// Undisturbed, a rotation takes, sealed.
	if err := rotate(func() {}, func(st *sealed.Store) error { return st.RotateSiteSecret(ctx, "3_a", mine) }); err != nil {
		t.Fatal(err)
	}
	if s, err := plain.Site(ctx, "3_a"); err != nil || s.Secret != mine {
		t.Errorf("after the rotation: %+v %v", s, err)
	}
	if s, err := raw.Site(ctx, "3_a"); err != nil || !sealed.IsSealed(s.Secret) {
		t.Errorf("stored: %+v %v, want sealed", s, err)
	}
}

// TestSnapshotUnsupported: over a store that cannot be read as of one moment, a
// sealed store's Snapshot says so (errors.ErrUnsupported), for its caller to read the
// store itself instead.
func TestSnapshotUnsupported(t *testing.T) {
	raw := openSQLite(t, filepath.Join(t.TempDir(), "socius.db"))
	defer raw.Close()
	// Only the socius.Store methods of the SQLite store: not a socius.Snapshotter.
	st := wrap(t, struct{ socius.Store }{raw}, sealed.NewKey())
	v, err := st.Snapshot(t.Context())
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Snapshot = %v, %v; want errors.ErrUnsupported", v, err)
	}
}
