package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// selfSignedNames are the names the generated certificate is valid for: loopback, and
// the hosts the SDK recipes use to reach a local server.
var selfSignedNames = []string{"localhost", "socialize.localtest", "*.localtest", "socialize.localtest.gigya.com"}

// selfSignedDomains are the DNS name constraints of the generated certificate: those
// names and the names below them.
var selfSignedDomains = []string{"localhost", "localtest", "socialize.localtest.gigya.com"}

// loadOrCreateCert returns the TLS certificate: the given files, or a self-signed one
// kept in the data folder (created on first start). created reports a new one.
func loadOrCreateCert(certFile, keyFile, dataDir string) (cert tls.Certificate, path string, created bool, err error) {
	if certFile != "" || keyFile != "" { // both: ParseFlags refuses one alone
		cert, err = loadKeyPair(certFile, keyFile)
		return cert, certFile, false, err
	}
	certFile = filepath.Join(dataDir, "tls-cert.pem")
	keyFile = filepath.Join(dataDir, "tls-key.pem")
	cert, err = loadKeyPair(certFile, keyFile)
	if err == nil {
		return cert, certFile, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return cert, "", false, fmt.Errorf("load %s: %w", certFile, err)
	}
	certPEM, keyPEM, err := selfSignedCert(time.Now())
	if err != nil {
		return cert, "", false, err
	}
	// With PostgreSQL nothing else makes the data folder: it holds only this.
	if err := makeDataDir(dataDir); err != nil {
		return cert, "", false, err
	}
	// Through a new file renamed into place, not os.WriteFile: that keeps the mode of a
	// key file already there (one left world-readable, whose certificate was removed to
	// have a new pair made), and the new private key would be readable by every user.
	// A folder that could not be synced after the rename (folderNotSyncedError) leaves
	// the key written and in place, as the certificate is, which is written without a
	// sync: a power loss that loses either has the next start make a new pair.
	err = writeOut(keyFile, func(w io.Writer) error { _, err := w.Write(keyPEM); return err })
	if err != nil && !errors.As(err, new(*folderNotSyncedError)) {
		return cert, "", false, err
	}
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		return cert, "", false, err
	}
	cert, err = tls.X509KeyPair(certPEM, keyPEM)
	return cert, certFile, true, err
}

// checkSelfSigned runs before anything is made, when --https serves the data folder's
// own certificate: it loads the pair when it is there, or else checks that
// loadOrCreateCert will be able to write it (path "": made later, with the store). A
// pair that cannot be read, or a folder or file that cannot be written, fails the
// start now, saying which file and what to do, not with the store, master key and
// demo site made.
func checkSelfSigned(dataDir string) (cert tls.Certificate, path string, err error) {
	certFile, keyFile := filepath.Join(dataDir, "tls-cert.pem"), filepath.Join(dataDir, "tls-key.pem")
	cert, err = loadKeyPair(certFile, keyFile)
	var pe *fs.PathError
	switch {
	case err == nil:
		return cert, certFile, nil
	case errors.As(err, &pe) && errors.Is(err, fs.ErrPermission):
		return cert, "", fmt.Errorf("TLS certificate: %s cannot be read: %w; the data folder's certificate and key must be readable by the user Socius runs as (uid %d): chown them, or remove both to have a new pair made",
			pe.Path, pe.Err, os.Geteuid())
	case !errors.Is(err, fs.ErrNotExist):
		return cert, "", fmt.Errorf("TLS certificate: load %s: %w", certFile, err)
	}
	for _, f := range []string{keyFile, certFile} {
		if err := takesFile(f); err != nil {
			return cert, "", selfSignedUnwritable(dataDir, f, err)
		}
	}
	return cert, "", nil
}

// selfSignedUnwritable says that the data folder's certificate cannot be made, and
// what to do.
func selfSignedUnwritable(dataDir, file string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("TLS certificate: %s cannot be written: %w; with --https and no --tls-cert, Socius makes a self-signed certificate in the data folder on the first start: "+
		"make %s writable by the user Socius runs as (uid %d), give a certificate of your own with --tls-cert and --tls-key, or serve HTTP only with --https \"\"",
		file, err, dataDir, os.Geteuid())
}

// takesFile fails unless os.WriteFile(path) could write: an existing file that may be
// written, or a folder that takes a new file, the nearest one that exists when path's
// folder is yet to be made (MkdirAll makes the rest). It leaves nothing behind.
func takesFile(path string) error {
	if _, err := os.Lstat(path); err == nil {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		return f.Close()
	}
	dir := filepath.Dir(path)
	for {
		if _, err := os.Stat(dir); err == nil || filepath.Dir(dir) == dir {
			break
		}
		dir = filepath.Dir(dir)
	}
	f, err := os.CreateTemp(dir, ".socius-check-*")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

// certFilesError is err, a failure to load the certificate of --tls-cert with the key
// of --tls-key, as a usage error (exit 2) naming the flag whose file is at fault, as
// for every flag that names a file: one that cannot be read, a certificate file that
// holds no certificate (or the key: the files swapped), a key file that holds no key,
// or the key of another certificate. What the file must hold is said with it.
func certFilesError(certFile, keyFile string, err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		for _, f := range []struct{ flag, path string }{{"--tls-cert", certFile}, {"--tls-key", keyFile}} {
			if pe.Path == f.path {
				return flagError{fileError(f.flag, f.path, err)}
			}
		}
		return fmt.Errorf("TLS certificate: %w", err)
	}
	if certPEM, rerr := readFileAtMost(certFile, maxCertPEM, ""); rerr == nil && !holdsCertificate(certPEM) {
		return badFlag("--tls-cert %s: %v; it must hold the server's certificate in PEM (-----BEGIN CERTIFICATE-----), any intermediate ones after it", certFile, err)
	}
	return badFlag("--tls-key %s: %v; it must hold the private key of the --tls-cert certificate in PEM (-----BEGIN PRIVATE KEY-----, or RSA or EC PRIVATE KEY)", keyFile, err)
}

// loadKeyPair is tls.LoadX509KeyPair reading each file through readFileAtMost: a
// certificate or key file given by mistake is refused, not read whole into memory.
func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := readFileAtMost(certFile, maxCertPEM, "it must hold the server's certificate in PEM, any intermediate ones after it")
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err := readFileAtMost(keyFile, maxKeyPEM, "it must hold the private key of the certificate in PEM")
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

// holdsCertificate reports whether certPEM's first CERTIFICATE block, the one
// tls.X509KeyPair serves and matches with the key, is a certificate that parses.
func holdsCertificate(certPEM []byte) bool {
	for {
		var block *pem.Block
		block, certPEM = pem.Decode(certPEM)
		if block == nil {
			return false
		}
		if block.Type == "CERTIFICATE" {
			_, err := x509.ParseCertificate(block.Bytes)
			return err == nil
		}
	}
}

// selfSignedCert makes a certificate that is its own CA, so that clients can trust the
// one file (CA bundle, Java trust store, ...).
func selfSignedCert(now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "Socius local server", Organization: []string{"Socius"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(5, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              selfSignedNames,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		// The recipes have clients trust this certificate as a CA (Java's trust store,
		// a CA file): constrained to its own names, anything its key might sign for
		// another host (a bank's, say) is refused by those clients, should the key
		// leave the data folder.
		PermittedDNSDomainsCritical: true,
		PermittedDNSDomains:         selfSignedDomains,
		PermittedIPRanges: []*net.IPNet{
			{IP: net.IPv4(127, 0, 0, 1).To4(), Mask: net.CIDRMask(32, 32)},
			{IP: net.IPv6loopback, Mask: net.CIDRMask(128, 128)},
		},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// caFileUsage describes --ca-file, of socius call and socius emulator.
const caFileUsage = "PEM certificates to trust for an https:// --url besides the system's: the CA's that issued the server's certificate, " +
	"or that certificate itself (the server's --tls-cert file; for the self-signed one serve makes without --tls-cert, " +
	"tls-cert.pem in its --data folder, whose path serve printed at start)"

// trustingTransport returns a copy of the default transport that trusts, besides the
// system's roots, the certificates of the PEM file caFile (a private CA's bundle, or
// Socius's generated tls-cert.pem); with caFile empty, the system's roots alone. Its
// errors name --ca-file, the flag of every command that takes one.
func trustingTransport(caFile string) (*http.Transport, error) {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if caFile == "" {
		return transport, nil
	}
	pemBytes, err := readFileAtMost(caFile, maxCABundle, "it must hold PEM certificates")
	if err != nil {
		return nil, fileError("--ca-file", caFile, err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("--ca-file %s holds no PEM certificate", caFile)
	}
	transport.TLSClientConfig = &tls.Config{RootCAs: pool}
	return transport, nil
}

// untrustedCertificate says what to do about err when it is a server's certificate
// that no CA the command trusts signed (Socius's own generated one, a private CA's),
// and reports whether it is: the TLS error alone ("x509: certificate signed by
// unknown authority") does not say that --ca-file is the way to trust it.
func untrustedCertificate(err error, caFile string) (string, bool) {
	var ua x509.UnknownAuthorityError
	if !errors.As(err, &ua) {
		return "", false
	}
	if caFile != "" {
		return "the server's certificate is signed by no CA of --ca-file " + caFile + " nor of this system's", true
	}
	// The generated certificate is in the server's data folder, which this command
	// cannot know (serve --emulator without --data keeps it in a temporary folder):
	// the hint names the line in which serve printed its path.
	return "the server's certificate is signed by no CA this system trusts: give --ca-file FILE to trust its CA (for the certificate Socius generates, " +
		"FILE is the one serve printed at start, \"serving HTTPS on ... (certificate FILE)\": tls-cert.pem in its --data folder, or, for serve --emulator without --data, in the temporary folder it printed)", true
}
