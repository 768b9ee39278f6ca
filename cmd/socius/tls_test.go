package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSelfSignedCertConstrained: the generated certificate is valid for its own names,
// and what its key signs for any other host is refused (it is a CA that the recipes
// have clients trust, so it is constrained to its names); for a name below its own, a
// certificate of its key verifies.
func TestSelfSignedCertConstrained(t *testing.T) {
	now := time.Now()
	certPEM, keyPEM, err := selfSignedCert(now)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, name := range []string{"localhost", "socialize.localtest", "api.localtest", "socialize.localtest.gigya.com", "127.0.0.1", "::1"} {
		if _, err := ca.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, CurrentTime: now}); err != nil {
			t.Errorf("the certificate for %s: %v", name, err)
		}
	}
	issue := func(dns string, ip net.IP) *x509.Certificate {
		t.Helper()
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: dns},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		if dns != "" {
			tmpl.DNSNames = []string{dns}
		}
		if ip != nil {
			tmpl.IPAddresses = []net.IP{ip}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, pair.PrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, c := range []struct {
		dns string
		ip  net.IP
	}{{"www.paypal.com", nil}, {"localtest.evil.com", nil}, {"", net.IPv4(10, 0, 0, 1)}} {
		leaf := issue(c.dns, c.ip)
		name := c.dns
		if name == "" {
			name = c.ip.String()
		}
		_, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, CurrentTime: now})
		if err == nil || !strings.Contains(err.Error(), "constraint") {
			t.Errorf("a certificate for %s signed by the generated key: %v, want a name constraint error", name, err)
		}
	}
	if _, err := issue("api.localtest", nil).Verify(x509.VerifyOptions{DNSName: "api.localtest", Roots: roots, CurrentTime: now}); err != nil {
		t.Errorf("a certificate for api.localtest: %v", err)
	}
}

// TestOwnCertificate: --tls-cert and --tls-key are what the HTTPS listener serves (the
// data folder gets no certificate of its own), and a certificate that cannot be read
// fails the start before anything is made: no data folder, no master key, no store.
func TestOwnCertificate(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM, err := selfSignedCert(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "mine-cert.pem"), filepath.Join(dir, "mine-key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	ts := startMain(t, nil, "--data", data, "--tls-cert", certFile, "--tls-key", keyFile)
	if ts.CertFile != certFile {
		t.Errorf("CertFile = %q, want %q", ts.CertFile, certFile)
	}
	if a := ts.call(t, "socialize.notifyLogin", url.Values{"siteUID": {"tls-u1"}}); a.code() != 0 {
		t.Fatalf("notifyLogin: %v", a)
	}
	resp, err := ts.client.Post(ts.HTTPSURL+"/socialize.getUserInfo", "application/x-www-form-urlencoded",
		strings.NewReader(url.Values{"apiKey": {testAPIKey}, "secret": {testSecret}, "UID": {"tls-u1"}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
		t.Fatal("no TLS state on the HTTPS answer")
	}
	block, _ := pem.Decode(certPEM)
	if !bytes.Equal(resp.TLS.PeerCertificates[0].Raw, block.Bytes) {
		t.Error("the HTTPS listener served another certificate than --tls-cert")
	}
	if _, err := os.Stat(filepath.Join(data, "tls-cert.pem")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the data folder has a certificate of its own: %v", err)
	}

	for _, c := range []struct{ name, cert, key, err string }{
		{"missing", filepath.Join(dir, "none.pem"), keyFile, "no such file"},
		{"not a pair", certFile, certFile, "--tls-key " + certFile + ": tls: found a certificate rather than a key"},
	} {
		fresh := filepath.Join(dir, "fresh-"+strings.ReplaceAll(c.name, " ", "-"))
		err := runMain(t, nil, "--data", fresh, "--https", "127.0.0.1:0", "--tls-cert", c.cert, "--tls-key", c.key)
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: start: %v, want an error with %q", c.name, err, c.err)
		}
		if _, err := os.Stat(fresh); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: the failed start made the data folder: %v", c.name, err)
		}
	}
}

// TestGeneratedCertificateFiles: the generated key is its owner's alone, the HTTPS
// listener refuses TLS before 1.2, and a certificate file in the data folder that
// cannot be read fails the start rather than being replaced by a new one.
func TestGeneratedCertificateFiles(t *testing.T) {
	ts := startServer(t)
	certFile, keyFile := filepath.Join(ts.DataDir, "tls-cert.pem"), filepath.Join(ts.DataDir, "tls-key.pem")
	for file, mode := range map[string]os.FileMode{certFile: 0o644, keyFile: 0o600} {
		if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v %v, want mode %v", file, fi.Mode(), err, mode)
		}
	}
	conn, err := tls.Dial("tcp", hostPort(ts.HTTPSURL), &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err == nil {
		conn.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	}
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = runMain(t, nil, "--data", ts.DataDir, "--https", "127.0.0.1:0")
	if err == nil || !strings.Contains(err.Error(), "load "+certFile) {
		t.Errorf("start with an unreadable %s: %v", certFile, err)
	}
	if b, _ := os.ReadFile(certFile); string(b) != "not a certificate" {
		t.Error("the unreadable certificate was replaced")
	}
}

// TestGeneratedKeyNotReadableByOthers: a new pair made where a key file was left
// without its certificate (removed to have a new pair made), readable by every user,
// gets a key file its owner alone may read: os.WriteFile kept the old file's mode.
func TestGeneratedKeyNotReadableByOthers(t *testing.T) {
	data := t.TempDir()
	if err := os.Chmod(data, 0o755); err != nil { // a folder the operator made
		t.Fatal(err)
	}
	keyFile := filepath.Join(data, "tls-key.pem")
	if err := os.WriteFile(keyFile, []byte("the key of a certificate removed since"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(keyFile, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	ts := startServer(t, "--data", data)
	if ts.CertFile != filepath.Join(data, "tls-cert.pem") {
		t.Fatalf("certificate %q, want the data folder's", ts.CertFile)
	}
	fi, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v, want -rw------- (a private key readable by its owner alone)", keyFile, fi.Mode())
	}
	if b, _ := os.ReadFile(keyFile); !strings.Contains(string(b), "PRIVATE KEY") {
		t.Errorf("%s holds %q, not the new key", keyFile, b)
	}
}

// TestGeneratedKeyFolderNotSynced: a data folder that cannot be synced once the new
// key is renamed into it (one its user may write but not read, a failing disk) still
// gets its certificate, and the server starts: the key is written and in place, as
// the certificate is, which is written without any sync (a power loss that loses
// either has the next start make a new pair). The start failed, saying the data folder
// could not be written, with the key left there and no certificate: every start made
// a new key and failed again.
func TestGeneratedKeyFolderNotSynced(t *testing.T) {
	defer func(f func(string) error) { syncFolder = f }(syncFolder)
	syncFolder = func(dir string) error {
		return &fs.PathError{Op: "open", Path: dir, Err: fs.ErrPermission}
	}
	data := t.TempDir()
	ts := startServer(t, "--data", data)
	if ts.CertFile != filepath.Join(data, "tls-cert.pem") {
		t.Fatalf("certificate %q, want the data folder's", ts.CertFile)
	}
	if _, err := tls.LoadX509KeyPair(ts.CertFile, filepath.Join(data, "tls-key.pem")); err != nil {
		t.Errorf("the pair made where the folder was not synced: %v", err)
	}
}
