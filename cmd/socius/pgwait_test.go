package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/socius/socius/internal/pgtest"
	"github.com/socius/socius/internal/syncbuf"
)

// TestPostgresStartWaitLogged runs the binary's serve, and an admin command, on a
// database of the version before migration 0005 beside a session that read tokens in
// a transaction it left open (as the operator's drill had a psql do): 0005's ALTER
// TABLE tokens waits for it. Both say so on standard error, naming the session's pid
// and application_name, where they sat silent; once the session ends, both go on. The
// password of the URL is in neither's output.
func TestPostgresStartWaitLogged(t *testing.T) {
	dsn := pgtest.URL(t)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// The database as a Socius of 2026-11-29 left it: migrations 0001 to 0004.
	qs := []string{`CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`}
	for i, name := range []string{"0001_init.sql", "0002_tokens.sql", "0003_nonces.sql", "0004_tokens_by_key.sql"} {
		body, err := os.ReadFile(filepath.Join("..", "..", "postgres", "migrations", name))
		if err != nil {
			t.Fatal(err)
		}
		qs = append(qs, string(body), fmt.Sprintf(`INSERT INTO schema_migrations VALUES (%d, '%s', 0)`, i+1, name))
	}
	for _, q := range qs {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%v\n%s", err, q)
		}
	}
	pid, tx := pgtest.HoldLock(t, dsn, "drill-psql", `SELECT count(*) FROM tokens`)

	// A password the test server's trust authentication never asks for: it must not
	// be said.
	const password = "pw-never-logged-7f3a"
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), password)
	store := u.String()
	key := testMasterKeyFile(t)
	run := func(args ...string) (*exec.Cmd, *syncbuf.Buffer, *syncbuf.Buffer, chan error) {
		cmd := exec.Command(binary(t), args...)
		cmd.Env = append(os.Environ(), "SOCIUS_STORE=", "PGAPPNAME=")
		var stdout, stderr syncbuf.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		dieWithParent(cmd)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		done := make(chan struct{})
		go func() {
			exited <- cmd.Wait()
			close(done)
		}()
		t.Cleanup(func() {
			cmd.Process.Kill()
			<-done
		})
		return cmd, &stdout, &stderr, exited
	}
	serve, serveOut, serveLog, serveExit := run("serve", "--store", store, "--master-key-file", key,
		"--http", "127.0.0.1:0", "--https", "", "--admin", "", "--data", t.TempDir())
	_, adminOut, adminLog, adminExit := run("site", "list", "--store", store, "--master-key-file", key)

	// The watcher looks every 5 s; the margin is the slow, shared CI machine's.
	said := fmt.Sprintf("pid %d (drill-psql, user postgres, from 127.0.0.1, idle in transaction for ", pid)
	for _, c := range []struct {
		name string
		log  *syncbuf.Buffer
	}{{"serve", serveLog}, {"site list", adminLog}} {
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
			text := c.log.String()
			if strings.Contains(text, "level=WARN") && strings.Contains(text, `step="migration 0005_token_roots.sql"`) &&
				strings.Contains(text, said) && strings.Contains(text, "SELECT count(*) FROM tokens") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not say within 2 minutes what its start waits for (%s...):\n%s", c.name, said, text)
			}
		}
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-adminExit:
		if err != nil {
			t.Errorf("site list once the session ended: %v\n%s", err, adminLog.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("site list did not end within 2 minutes of the session's end:\n%s", adminLog.String())
	}
	for deadline := time.Now().Add(2 * time.Minute); !strings.Contains(serveOut.String(), "serving HTTP on"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start within 2 minutes of the session's end:\n%s\n%s", serveOut.String(), serveLog.String())
		}
	}
	serve.Process.Signal(syscall.SIGTERM)
	select {
	case <-serveExit:
	case <-time.After(time.Minute):
		t.Error("serve did not stop within a minute of SIGTERM")
	}
	for _, out := range []string{serveOut.String(), serveLog.String(), adminOut.String(), adminLog.String()} {
		if strings.Contains(out, password) {
			t.Errorf("the URL's password was said:\n%s", out)
		}
	}
}
