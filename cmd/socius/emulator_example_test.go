package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// goTool is the go command: the one on PATH, else the one of the Go that built the
// tests (go test does not put GOROOT in their environment).
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	//lint:ignore SA1019 the tests run on the machine that built them
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// buildBinary builds the socius binary into a temp folder, for the tests that run it
// as a process.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "socius")
	cmd := exec.Command(goTool(), "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestEmulatorCIExample runs the README's CI example as it is written: emulator-ci.sh
// starts the socius binary with emulator-seed.jsonl, runs emulator-example.test.js
// with the real gigya npm package, and stops socius with SIGTERM, which exports the
// state. The README must show the three files verbatim.
func TestEmulatorCIExample(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("..", "..", "compat", "node"))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"emulator-seed.jsonl", "emulator-example.test.js", "emulator-ci.sh"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(readme, b) {
			t.Errorf("README.md does not show compat/node/%s as it is", name)
		}
	}

	nodePackage(t, "the emulator CI example with the gigya npm package")
	bin := buildBinary(t)
	out := filepath.Join(t.TempDir(), "out.jsonl")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(dir, "emulator-ci.sh"))
	cmd.Env = append(nodeEnv(), "PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"SOCIUS_HTTP="+freeAddr(t), "SOCIUS_HTTPS="+freeAddr(t), "EXPORT="+out)
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	err = cmd.Run()
	t.Logf("emulator-ci.sh:\n%s", output.String())
	if err != nil {
		t.Fatalf("emulator-ci.sh: %v (timeout: %v)", err, ctx.Err())
	}
	if s := output.String(); !strings.Contains(s, "# pass 7") || !strings.Contains(s, "# fail 0") {
		t.Errorf("the example's tests did not all pass")
	}
	b, err := os.ReadFile(out)
	if err != nil || !strings.Contains(string(b), `"UID":"alice"`) || !strings.Contains(string(b), `"apiKey":"3_SociusCI"`) {
		t.Errorf("the export on exit: %v\n%s", err, b)
	}
}

// TestEmulatorCIExampleGivesUp: the README's CI step stops waiting for a socius that
// started but never answers (here a stand-in that only sleeps), says so and fails,
// within SOCIUS_START_TIMEOUT, instead of hanging the CI job until its own timeout.
func TestEmulatorCIExampleGivesUp(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("..", "..", "compat", "node"))
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	// serve sleeps (alive, never answering); every other command fails, as
	// emulator status does against a server that does not answer.
	stub := "#!/usr/bin/env bash\nif [ \"$1\" = serve ]; then exec sleep 300; fi\nexit 1\n"
	if err := os.WriteFile(filepath.Join(bin, "socius"), []byte(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(dir, "emulator-ci.sh"))
	cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"SOCIUS_HTTP="+freeAddr(t), "SOCIUS_START_TIMEOUT=2", "EXPORT="+filepath.Join(t.TempDir(), "out.jsonl"))
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	start := time.Now()
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("emulator-ci.sh still waiting after %v:\n%s", time.Since(start), output.String())
	}
	if err == nil || !strings.Contains(output.String(), "socius did not answer on") || !strings.Contains(output.String(), "within 2 s") {
		t.Fatalf("emulator-ci.sh: %v, want a failure that says socius did not answer:\n%s", err, output.String())
	}
}
