package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/socius/socius/sqlite"
)

// backupStore makes the embedded store of the lab site in a new data folder, with
// users p0 to p(n-1), nicknamed "old", imported as `socius user import` does.
func backupStore(t *testing.T, n int) string {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data")
	if code, _, errOut := runCLI(t, noEnv, "site", "create", "--data", data, "--api-key", testAPIKey, "--secret", testSecret, "--name", "lab"); code != 0 {
		t.Fatalf("site create: %d %s", code, errOut)
	}
	var lines bytes.Buffer
	for i := range n {
		fmt.Fprintf(&lines, `{"kind":"user","apiKey":%q,"UID":"p%d","profile":{"nickname":"old","firstName":"Prefilled user number %d"}}`+"\n", testAPIKey, i, i)
	}
	in := filepath.Join(t.TempDir(), "users.jsonl")
	if err := os.WriteFile(in, lines.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI(t, noEnv, "user", "import", "--data", data, "--in", in); code != 0 {
		t.Fatalf("user import: %d %s", code, errOut)
	}
	return data
}

// copyNicknames reads the nickname of every user in the backup at path.
func copyNicknames(t *testing.T, path string) map[string]string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&immutable=1")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var check string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check of the backup: %q, %v", check, err)
	}
	rows, err := db.Query(`SELECT uid, COALESCE(nickname, '') FROM users`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	nicknames := map[string]string{}
	for rows.Next() {
		var uid, nickname string
		if err := rows.Scan(&uid, &nickname); err != nil {
			t.Fatal(err)
		}
		nicknames[uid] = nickname
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return nicknames
}

// callNode signs a call with the lab site's secret and posts it to the node; unlike
// postTo, it may run on any goroutine: it reports a failure as an error.
func callNode(t *testing.T, client *http.Client, n *node, method string, params url.Values) (answer, error) {
	p := signedFor(t, n.httpURL, method, params, "", "")
	resp, err := client.Post(n.httpURL+"/"+method, "application/x-www-form-urlencoded", strings.NewReader(p.Encode()))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var a answer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return nil, fmt.Errorf("%s: answer is not JSON: %w", method, err)
	}
	return a, nil
}

// TestBackupOfAServingStore takes a backup of the embedded store while `socius serve`
// (the binary) answers setUserInfo calls in a loop: the copy passes integrity_check and
// holds every write acknowledged before the backup began; the server answers calls
// during the backup; and a restore (the server stopped, the copy put in place of
// socius.db, the server started on it with the same master key, and without the site's
// flags: the site's secret is the copy's, sealed) serves the users, whereas another
// master key is refused.
func TestBackupOfAServingStore(t *testing.T) {
	const prefilled = 30000 // enough for the copy to take a while
	data := backupStore(t, prefilled)
	bin := binary(t)
	serveArgs := []string{"--data", data, "--http", "127.0.0.1:0", "--https", "", "--admin", "", "--log-level", "error"}
	srv, err := startNode(t, bin, "serving", serveArgs...)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 30 * time.Second}

	// Writers set the prefilled users' nicknames, each user once, each writer its own
	// users in turn. A call is recorded when its answer came back.
	const writers = 4
	type write struct {
		uid        string
		start, end time.Time
	}
	var (
		mu       sync.Mutex
		done     []write
		failures atomic.Int64
		firstErr atomic.Pointer[error]
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	for w := range writers {
		wg.Go(func() {
			for i := w; i < prefilled; i += writers {
				select {
				case <-stop:
					return
				default:
				}
				uid := fmt.Sprintf("p%d", i)
				start := time.Now()
				a, err := callNode(t, client, srv, "socialize.setUserInfo", url.Values{"UID": {uid}, "userInfo": {`{"nickname":"set"}`}})
				if err == nil && a.code() != 0 {
					err = fmt.Errorf("setUserInfo %s: %v", uid, a)
				}
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, &err)
					continue
				}
				mu.Lock()
				done = append(done, write{uid, start, time.Now()})
				mu.Unlock()
			}
		})
	}
	stopWriters := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopWriters)
	waitWrites := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			mu.Lock()
			got := len(done)
			mu.Unlock()
			if got >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d writes acknowledged in 30 s, want %d (failures: %d)", got, n, failures.Load())
			}
		}
	}
	waitWrites(200)

	out := filepath.Join(t.TempDir(), "backups", "socius.db")
	if err := os.Mkdir(filepath.Dir(out), 0o700); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	before := append([]write(nil), done...)
	mu.Unlock()
	backupStart := time.Now()
	code, stdout, stderr := runCLI(t, noEnv, "backup", "--data", data, "--out", out)
	backupEnd := time.Now()
	if code != 0 {
		t.Fatalf("backup: exit %d\n%s%s", code, stdout, stderr)
	}
	waitWrites(len(before) + 50) // the server goes on after the backup
	stopWriters()
	if p := firstErr.Load(); p != nil {
		t.Fatalf("%d calls failed, the first: %v", failures.Load(), *p)
	}
	var during int
	mu.Lock()
	for _, w := range done {
		if w.start.After(backupStart) && w.end.Before(backupEnd) {
			during++
		}
	}
	mu.Unlock()
	t.Logf("backup in %v (%d calls answered meanwhile, %d before it)", backupEnd.Sub(backupStart).Round(time.Millisecond), during, len(before))
	if during == 0 {
		t.Errorf("no call was answered during the backup (%v): the server waited for it", backupEnd.Sub(backupStart))
	}

	for _, want := range []string{"backup: " + out, "from:   " + filepath.Join(data, "socius.db"), "sites:  1", "master key (" + filepath.Join(data, "master.key")} {
		if !strings.Contains(stdout, want) {
			t.Errorf("backup's output lacks %q:\n%s", want, stdout)
		}
	}
	if m := regexp.MustCompile(`users:  (\d+)`).FindStringSubmatch(stdout); m == nil || m[1] != fmt.Sprint(prefilled) {
		t.Errorf("backup's output: users %v, want %d:\n%s", m, prefilled, stdout)
	}
	nicknames := copyNicknames(t, out)
	if len(nicknames) != prefilled {
		t.Errorf("the copy holds %d users, want %d", len(nicknames), prefilled)
	}
	for _, w := range before {
		if nicknames[w.uid] != "set" {
			t.Fatalf("user %s in the copy: nickname %q; its setUserInfo was answered before the backup began", w.uid, nicknames[w.uid])
		}
	}
	files, _ := os.ReadDir(filepath.Dir(out))
	if len(files) != 1 {
		t.Errorf("the backups folder holds %d files, want the copy alone", len(files))
	}

	// The restore, as docs/operations.md says it: the server stopped, the copy put in
	// place, the WAL and its index deleted.
	srv.stop(t)
	db := filepath.Join(data, "socius.db")
	for _, p := range []string{db, db + "-wal", db + "-shm"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	copyFile(t, out, db, 0o600)
	// Another master key cannot open the copy's secrets: the server refuses to start.
	otherKey := testMasterKeyFile(t)
	if n, err := startNode(t, bin, "other-key", append(serveArgs, "--master-key-file", otherKey)...); err == nil {
		n.stop(t)
		t.Fatal("serve with another master key started on the restored copy")
	} else if !strings.Contains(err.Error(), "master key") {
		t.Errorf("serve with another master key: %v, want it to say the master key is wrong", err)
	}
	restored, err := startNode(t, bin, "restored", serveArgs...)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []write{before[0], before[len(before)/2], before[len(before)-1]} {
		a, err := callNode(t, client, restored, "socialize.getUserInfo", url.Values{"UID": {w.uid}})
		if err != nil || a.code() != 0 || a.str("nickname") != "set" {
			t.Errorf("getUserInfo %s on the restored store: %v, %v", w.uid, a, err)
		}
	}
	last := fmt.Sprintf("p%d", prefilled-1)
	if a, err := callNode(t, client, restored, "socialize.getUserInfo", url.Values{"UID": {last}}); err != nil || a.code() != 0 || a.str("nickname") != nicknames[last] {
		t.Errorf("getUserInfo %s on the restored store: %v, %v; want nickname %q", last, a, err, nicknames[last])
	}
	if a, err := callNode(t, client, restored, "socialize.setUserInfo", url.Values{"UID": {last}, "userInfo": {`{"nickname":"after"}`}}); err != nil || a.code() != 0 {
		t.Errorf("setUserInfo on the restored store: %v, %v", a, err)
	}
}

// TestBackupRefused: what backup cannot do is a usage error, exit 2, said with the
// flag, before anything is copied or made.
func TestBackupRefused(t *testing.T) {
	data := backupStore(t, 3)
	dir := t.TempDir()
	notAFolder := filepath.Join(t.TempDir(), "users.jsonl")
	if err := os.WriteFile(notAFolder, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"postgres", []string{"--store", "postgres://socius@db.internal/socius", "--out", filepath.Join(dir, "b.db")}, "pg_dump"},
		{"other store", []string{"--store", "mysql://x", "--out", filepath.Join(dir, "b.db")}, `--store "mysql://x"`},
		{"no out", nil, "--out FILE is required"},
		{"standard output", []string{"--out", "-"}, "--out -: a backup is a SQLite database"},
		{"out folder missing", []string{"--out", filepath.Join(dir, "none", "b.db")}, "--out: cannot create " + filepath.Join(dir, "none", "b.db")},
		{"out a folder", []string{"--out", dir}, "--out: " + dir + " is a folder"},
		{"out a device", []string{"--out", os.DevNull}, "not a regular file"},
		{"out in the data folder", []string{"--out", filepath.Join(data, "socius.db")}, "in the data folder"},
		{"no store", []string{"--data", dir, "--out", filepath.Join(dir, "b.db")}, "no store at " + filepath.Join(dir, "socius.db")},
		{"no data folder", []string{"--data", filepath.Join(dir, "none"), "--out", filepath.Join(dir, "b.db")}, "no store at " + filepath.Join(dir, "none", "socius.db")},
		{"empty data", []string{"--data", "", "--out", filepath.Join(dir, "b.db")}, "--data is empty"},
		{"data a file", []string{"--data", notAFolder, "--out", filepath.Join(dir, "b.db")}, "no store at " + filepath.Join(notAFolder, "socius.db") + ": --data " + notAFolder + " is not a folder"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"backup"}, c.args...)
			if !slices.Contains(c.args, "--data") {
				args = append(args, "--data", data)
			}
			code, stdout, stderr := runCLI(t, noEnv, args...)
			if code != 2 || !strings.Contains(stderr, c.want) || stdout != "" {
				t.Errorf("socius %s: exit %d, stdout %q, stderr %q; want 2 and %q", strings.Join(args, " "), code, stdout, stderr, c.want)
			}
		})
	}
	if files, _ := os.ReadDir(dir); len(files) != 0 {
		t.Errorf("the refused backups left %d files in %s", len(files), dir)
	}
	// The refusal of a PostgreSQL store sends the operator to a document: that one
	// must say how such a store is backed up.
	_, _, stderr := runCLI(t, noEnv, "backup", "--store", "postgres://socius@db.internal/socius", "--out", filepath.Join(dir, "b.db"))
	doc := regexp.MustCompile(`docs/[a-z]+\.md`).FindString(stderr)
	if doc == "" {
		t.Errorf("socius backup --store postgres://... names no document: %q", stderr)
	} else if !strings.Contains(readDoc(t, doc), "pg_dump") {
		t.Errorf("socius backup --store postgres://... sends the operator to %s, which does not mention pg_dump: %q", doc, stderr)
	}
	// --data on the command line and SOCIUS_STORE naming PostgreSQL (set for a move):
	// the folder named is the store meant, and the refusal says where PostgreSQL came
	// from and how to back the folder up, its password masked.
	pgEnv := envOf("SOCIUS_STORE=postgres://socius:hunter2@db.internal/socius")
	code, stdout, stderr := runCLI(t, pgEnv, "backup", "--data", data, "--out", filepath.Join(dir, "b.db"))
	if code != 2 || stdout != "" || strings.Contains(stderr, "hunter2") ||
		!strings.Contains(stderr, "--data "+data+" names an embedded store, but SOCIUS_STORE names PostgreSQL (postgres://socius:xxxxx@db.internal/socius)") ||
		!strings.Contains(stderr, "--store sqlite") {
		t.Errorf("socius backup --data with SOCIUS_STORE naming PostgreSQL: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if code, _, stderr := runCLI(t, pgEnv, "backup", "--data", data, "--store", "sqlite", "--out", filepath.Join(dir, "b.db")); code != 0 {
		t.Errorf("socius backup --data --store sqlite with SOCIUS_STORE set: exit %d, %s", code, stderr)
	}
	os.Remove(filepath.Join(dir, "b.db"))
	if files, _ := os.ReadDir(data); len(files) != 2 { // socius.db, master.key
		t.Errorf("the data folder holds %d files after the refused backups, want 2", len(files))
	}
}

// TestBackupFailureLeavesTheFile: a backup that fails, at its check (made to fail), on
// a store that is no SQLite database, or stopped by a signal, leaves the file there
// before (yesterday's backup) as it was, and no file of its own.
func TestBackupFailureLeavesTheFile(t *testing.T) {
	data := backupStore(t, 3)
	garbage := filepath.Join(t.TempDir(), "garbage")
	if err := os.Mkdir(garbage, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(garbage, "socius.db"), bytes.Repeat([]byte("not a database "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "socius.db")
	const yesterday = "yesterday's backup"
	for _, c := range []struct {
		name  string
		data  string
		check func(context.Context, string) (sqlite.CopyInfo, error)
		ctx   func() context.Context
		want  string
	}{
		{name: "check fails", data: data, check: func(context.Context, string) (sqlite.CopyInfo, error) {
			return sqlite.CopyInfo{}, errors.New("integrity_check found the copy damaged: simulated")
		}, want: "the copy failed its check: integrity_check found the copy damaged: simulated"},
		{name: "schema differs", data: data, check: func(ctx context.Context, path string) (sqlite.CopyInfo, error) {
			info, err := sqlite.CheckCopy(ctx, path)
			info.Schema--
			return info, err
		}, want: "the copy's schema version is"},
		{name: "no database", data: garbage, want: "file is not a database"},
		{name: "signal", data: data, ctx: func() context.Context {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			return ctx
		}, want: "backup stopped by a signal: " + out + " is left as it was"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(out, []byte(yesterday), 0o600); err != nil {
				t.Fatal(err)
			}
			if c.check != nil {
				checkBackup = c.check
				defer func() { checkBackup = sqlite.CheckCopy }()
			}
			ctx := t.Context()
			if c.ctx != nil {
				ctx = c.ctx()
			}
			var stdout, stderr bytes.Buffer
			code := run(ctx, []string{"backup", "--data", c.data, "--out", out}, noEnv, &stdout, &stderr)
			if code != 1 || !strings.Contains(stderr.String(), c.want) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", code, stderr.String(), c.want)
			}
			if c.ctx == nil && !strings.Contains(stderr.String(), out+" is left as it was") {
				t.Errorf("stderr %q does not say that %s is left as it was", stderr.String(), out)
			}
			if b, err := os.ReadFile(out); err != nil || string(b) != yesterday {
				t.Errorf("%s after the failed backup: %q, %v; want it as it was", out, b, err)
			}
			if files, _ := os.ReadDir(dir); len(files) != 1 {
				names := []string{}
				for _, f := range files {
					names = append(names, f.Name())
				}
				t.Errorf("the folder holds %v after the failed backup, want %s alone", names, filepath.Base(out))
			}
		})
	}
	// And then a backup that works replaces it.
	if code, stdout, stderr := runCLI(t, noEnv, "backup", "--data", data, "--out", out); code != 0 || !strings.Contains(stdout, "users:  3") {
		t.Fatalf("backup: exit %d\n%s%s", code, stdout, stderr)
	}
	if info, err := sqlite.CheckCopy(t.Context(), out); err != nil || info.Users != 3 {
		t.Errorf("the backup: %+v, %v", info, err)
	}
}

// copyFile copies the file src to dst, made with mode perm.
func copyFile(t *testing.T, src, dst string, perm os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
