package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// testCA writes, into dir, a CA's certificate and a certificate it issued for
// 127.0.0.1 with the key of the latter, as a private CA's server has them; it returns
// the three files.
func testCA(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Socius test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageCertSign,
		BasicConstraintsValid: true, IsCA: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	caFile, certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for file, block := range map[string]*pem.Block{caFile: {Type: "CERTIFICATE", Bytes: caDER},
		certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return caFile, certFile, keyFile
}

// TestEmulatorCAFile: `socius emulator --url https://...` trusts a private CA given
// with --ca-file (or SOCIUS_CA_FILE), on the emulator's HTTPS listener serving a
// certificate that CA issued; without it the certificate is refused.
func TestEmulatorCAFile(t *testing.T) {
	dir := t.TempDir()
	caFile, certFile, keyFile := testCA(t, dir)
	ts := startEmulator(t, "--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.HasPrefix(ts.HTTPSURL, "https://127.0.0.1:") {
		t.Fatalf("HTTPS URL %q", ts.HTTPSURL)
	}

	code, out, errOut := runCLI(t, noEnv, "emulator", "status", "--url", ts.HTTPSURL, "--ca-file", caFile)
	if code != 0 || !strings.Contains(out, "users:  2") {
		t.Errorf("status over HTTPS with --ca-file: exit %d\n%s%s", code, out, errOut)
	}
	// A command that changes something, and the variable in place of the flag.
	env := envOf("SOCIUS_URL="+ts.HTTPSURL, "SOCIUS_CA_FILE="+caFile)
	if code, out, errOut := runCLI(t, env, "emulator", "faults", "add", "--code", "500001"); code != 0 || !strings.Contains(out, "added fault rule 1") {
		t.Errorf("faults add with SOCIUS_CA_FILE: exit %d\n%s%s", code, out, errOut)
	}

	// Without the CA the certificate is not trusted: a failure (exit 1) that says so.
	if code, _, errOut := runCLI(t, noEnv, "emulator", "status", "--url", ts.HTTPSURL); code != 1 || !strings.Contains(errOut, "certificate") {
		t.Errorf("status over HTTPS without --ca-file: exit %d %s", code, errOut)
	}
	// A file that cannot be read, or holds no certificate, is a usage error (exit 2),
	// said before anything is sent.
	for _, tt := range []struct{ file, says string }{
		{filepath.Join(dir, "none.pem"), "--ca-file " + filepath.Join(dir, "none.pem") + ": no such file or directory"},
		{keyFile, "--ca-file " + keyFile + " holds no PEM certificate"},
	} {
		if code, out, errOut := runCLI(t, noEnv, "emulator", "status", "--url", "https://127.0.0.1:1", "--ca-file", tt.file); code != 2 || out != "" || strings.Count(errOut, tt.says) != 1 {
			t.Errorf("--ca-file %s: exit %d, stdout %q, stderr %q; want 2 and %q once", tt.file, code, out, errOut, tt.says)
		}
	}
}

// TestUntrustedCertificateNamesServesLine: serve --emulator without --data keeps its
// generated certificate in a temporary folder, not in socius-data, so what `socius
// emulator` says about a certificate it does not trust names the line in which serve
// printed the certificate's path, and that line gives the path (which --ca-file then
// takes). The hint named socius-data/tls-cert.pem, a file such a server never made.
func TestUntrustedCertificateNamesServesLine(t *testing.T) {
	m := NewMain()
	if err := m.ParseFlags([]string{"--emulator", "--http", "", "--https", "127.0.0.1:0", "--admin", "", "--log-level", "error"}, noEnv, io.Discard); err != nil {
		t.Fatal(err)
	}
	var started bytes.Buffer
	m.Stdout = &started
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })

	line := regexp.MustCompile(`(?m)^socius: serving HTTPS on (\S+) \(certificate (.+)\)$`).FindStringSubmatch(started.String())
	if line == nil {
		t.Fatalf("no 'serving HTTPS on ... (certificate FILE)' line in serve's output:\n%s", &started)
	}
	certFile := line[2]
	if !strings.HasPrefix(certFile, m.tempData) || m.tempData == "" || !strings.Contains(started.String(), "data in "+m.tempData) {
		t.Errorf("certificate %s, temporary data folder %q; want the certificate in the folder serve printed:\n%s", certFile, m.tempData, &started)
	}

	code, _, errOut := runCLI(t, noEnv, "emulator", "status", "--url", m.HTTPSURL)
	if code != 1 || !strings.Contains(errOut, `give --ca-file FILE`) || !strings.Contains(errOut, `"serving HTTPS on ... (certificate FILE)"`) || strings.Contains(errOut, "socius-data") {
		t.Errorf("status without --ca-file: exit %d %q; want 1 and serve's certificate line named, not socius-data", code, errOut)
	}
	if code, out, errOut := runCLI(t, noEnv, "emulator", "status", "--url", m.HTTPSURL, "--ca-file", certFile); code != 0 || !strings.Contains(out, "users:") {
		t.Errorf("status with --ca-file %s, the file serve printed: exit %d\n%s%s", certFile, code, out, errOut)
	}
}

// TestCallCAFileOwnCertificate: `socius call --ca-file` against serve given a
// certificate of the user's own (--tls-cert, --tls-key, issued by a private CA) trusts
// it given the CA's certificate, or that --tls-cert file itself; serve then makes no
// tls-cert.pem in its data folder. Its -h says so, where it named
// socius-data/tls-cert.pem alone, a file such a server does not have.
func TestCallCAFileOwnCertificate(t *testing.T) {
	dir := t.TempDir()
	caFile, certFile, keyFile := testCA(t, dir)
	data := filepath.Join(dir, "data")
	ts := startServer(t, "--data", data, "--tls-cert", certFile, "--tls-key", keyFile)
	for _, trust := range []string{caFile, certFile} {
		code, out, errOut := runCLI(t, noEnv, "call", "--url", ts.HTTPSURL, "--ca-file", trust, "--api-key", testAPIKey, "--secret", testSecret,
			"socialize.notifyLogin", "siteUID=u1")
		if a := decodeAnswer(t, out); code != 0 || a.code() != 0 {
			t.Errorf("call --ca-file %s: exit %d, %v %s", trust, code, a, errOut)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "tls-cert.pem")); !os.IsNotExist(err) {
		t.Errorf("the data folder's tls-cert.pem with --tls-cert: %v, want none", err)
	}
	_, out, errOut := runCLI(t, noEnv, "call", "-h")
	help := out + errOut
	for _, want := range []string{"the server's --tls-cert file", "the CA's that issued", "tls-cert.pem in its --data folder"} {
		if !strings.Contains(help, want) {
			t.Errorf("call -h does not say %q:\n%s", want, help)
		}
	}
	if strings.Contains(help, "e.g. socius-data/tls-cert.pem") {
		t.Errorf("call -h names socius-data/tls-cert.pem alone:\n%s", help)
	}
}
