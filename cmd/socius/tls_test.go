package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
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
