package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/server"
)

// Main is one running Socius server: its configuration, store and listeners. Tests run
// it in-process on port 0 with a temp data folder, exactly as the binary runs.
type Main struct {
	HTTPAddr            string
	HTTPSAddr           string
	DataDir             string
	StoreURL            string // --store: empty for the embedded SQLite in DataDir
	TLSCert, TLSKey     string
	SiteAPIKey          string
	SiteSecret          string
	ClockSkew           time.Duration
	TrustForwardedProto bool
	MaxBodyBytes        int64
	LogLevel            string
	// Emulator mode: --emulator, --seed, --export-on-exit, ... (emulator.go).
	EmulatorOptions

	// Clock is the server's clock; tests inject one. The system clock when nil.
	Clock socius.Clock
	// Stdout receives what the user must see (addresses, demo credentials).
	Stdout io.Writer
	Logger *slog.Logger

	Store           socius.Store
	Nonces          socius.NonceStore
	Server          *server.Server
	CertFile        string // the certificate served over HTTPS
	HTTPURL         string // http://host:port once listening; empty when disabled
	HTTPSURL        string
	listeners       []net.Listener
	httpsListenAddr string
	servers         []*http.Server
	done            chan error

	stopHousekeeping func()
}

// NewMain returns a Main with the defaults of `socius serve`.
func NewMain() *Main {
	return &Main{
		HTTPAddr:     "127.0.0.1:8080",
		HTTPSAddr:    "127.0.0.1:8443",
		DataDir:      "socius-data",
		ClockSkew:    server.DefaultSkew,
		MaxBodyBytes: server.DefaultMaxBodyBytes,
		LogLevel:     "info",
		Stdout:       os.Stdout,
	}
}

// ParseFlags reads `socius serve` flags, then SOCIUS_* variables for flags not given.
func (m *Main) ParseFlags(args []string, lookupEnv func(string) (string, bool), errOut io.Writer) error {
	fs := newFlagSet("socius serve", errOut)
	fs.StringVar(&m.HTTPAddr, "http", m.HTTPAddr, "plain HTTP listen address (empty disables)")
	fs.StringVar(&m.HTTPSAddr, "https", m.HTTPSAddr, "HTTPS listen address (empty disables)")
	fs.StringVar(&m.DataDir, "data", m.DataDir, "data folder: the SQLite store and the generated TLS certificate")
	fs.StringVar(&m.StoreURL, "store", m.StoreURL, storeHelp)
	fs.StringVar(&m.TLSCert, "tls-cert", m.TLSCert, "TLS certificate file (PEM); a self-signed one is generated when empty")
	fs.StringVar(&m.TLSKey, "tls-key", m.TLSKey, "TLS private key file (PEM)")
	fs.StringVar(&m.SiteAPIKey, "site-api-key", m.SiteAPIKey, "make sure a site with this apiKey exists at start (with --site-secret)")
	fs.StringVar(&m.SiteSecret, "site-secret", m.SiteSecret, "the partner secret of --site-api-key (standard base64, at least 16 bytes)")
	fs.DurationVar(&m.ClockSkew, "clock-skew", m.ClockSkew, "how far a signed request's timestamp may be from the server's clock")
	fs.BoolVar(&m.TrustForwardedProto, "trust-forwarded-proto", m.TrustForwardedProto, "honour X-Forwarded-Proto: https from a TLS-terminating proxy")
	fs.Int64Var(&m.MaxBodyBytes, "max-body-bytes", m.MaxBodyBytes, "largest request body accepted")
	fs.StringVar(&m.LogLevel, "log-level", m.LogLevel, "debug, info, warn or error")
	m.registerEmulatorFlags(fs)
	if err := parse(fs, args, lookupEnv); err != nil {
		return err
	}
	if err := m.checkEmulatorFlags(fs); err != nil {
		return err
	}
	if (m.SiteAPIKey == "") != (m.SiteSecret == "") {
		return errors.New("--site-api-key and --site-secret go together")
	}
	if m.SiteAPIKey != "" {
		if !socius.ValidAPIKey(m.SiteAPIKey) {
			return fmt.Errorf("--site-api-key %q: 1 to 128 printable characters without spaces", m.SiteAPIKey)
		}
		if err := socius.ValidateSecret(m.SiteSecret); err != nil {
			return fmt.Errorf("--site-secret: %v", err)
		}
	}
	if err := checkStore(m.StoreURL); err != nil {
		return err
	}
	if m.ClockSkew <= 0 {
		return errors.New("--clock-skew must be positive")
	}
	if m.HTTPAddr == "" && m.HTTPSAddr == "" {
		return errors.New("both listeners are disabled: give --http or --https")
	}
	return nil
}

// Run opens the store (and with it the nonce store: shared in PostgreSQL, in memory
// with the embedded SQLite), prepares the demo or given site, and starts the listeners. It
// returns once Socius is accepting connections; Close stops it.
func (m *Main) Run(ctx context.Context) (err error) {
	if m.Stdout == nil {
		m.Stdout = io.Discard
	}
	if m.Logger == nil {
		var level slog.Level
		if err := level.UnmarshalText([]byte(m.LogLevel)); err != nil {
			return fmt.Errorf("--log-level: %v", err)
		}
		m.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	}
	if err := m.prepareEmulator(); err != nil {
		return err
	}
	if m.Clock == nil {
		m.Clock = socius.SystemClock{}
	}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	if err := os.MkdirAll(m.DataDir, 0o700); err != nil {
		return err
	}
	if m.Store, m.Nonces, err = openStore(ctx, m.StoreURL, m.DataDir); err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "socius: store: %s\n", describeStore(m.StoreURL, m.DataDir))
	if err := m.seedEmulator(ctx); err != nil {
		return err
	}
	if err := m.prepareSite(ctx); err != nil {
		return err
	}
	cfg := server.Config{
		Store:               m.Store,
		Nonces:              m.Nonces,
		Clock:               m.Clock,
		Skew:                m.ClockSkew,
		TrustForwardedProto: m.TrustForwardedProto,
		MaxBodyBytes:        m.MaxBodyBytes,
		Logger:              m.Logger,
	}
	m.configureEmulator(&cfg)
	m.Server = server.New(cfg)
	m.startHousekeeping()
	m.done = make(chan error, 2)
	if m.HTTPSAddr != "" {
		cert, path, created, err := loadOrCreateCert(m.TLSCert, m.TLSKey, m.DataDir)
		if err != nil {
			return fmt.Errorf("TLS certificate: %w", err)
		}
		m.CertFile = path
		if created {
			fmt.Fprintf(m.Stdout, "socius: generated a self-signed TLS certificate: %s\n", path)
		}
		ln, err := net.Listen("tcp", m.HTTPSAddr)
		if err != nil {
			return err
		}
		m.HTTPSURL = "https://" + ln.Addr().String()
		m.httpsListenAddr = ln.Addr().String()
		m.serve(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}), m.apiHandler())
		fmt.Fprintf(m.Stdout, "socius: serving HTTPS on %s (certificate %s)\n", m.HTTPSURL, path)
	}
	if m.HTTPAddr != "" {
		ln, err := net.Listen("tcp", m.HTTPAddr)
		if err != nil {
			return err
		}
		m.HTTPURL = "http://" + ln.Addr().String()
		handler := m.apiHandler()
		if m.httpsListenAddr != "" {
			handler = tunnelToSelf(m.httpsListenAddr, handler)
		}
		m.serve(ln, handler)
		fmt.Fprintf(m.Stdout, "socius: serving HTTP on %s\n", m.HTTPURL)
	}
	m.emulatorStarted()
	return nil
}

func (m *Main) serve(ln net.Listener, h http.Handler) {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(m.Logger.Handler(), slog.LevelDebug),
	}
	m.listeners = append(m.listeners, ln)
	m.servers = append(m.servers, srv)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.done <- err
		}
	}()
}

// prepareSite makes sure the site of --site-api-key exists with that secret, or, on
// an empty store, creates a demo site and prints its credentials.
func (m *Main) prepareSite(ctx context.Context) error {
	if m.SiteAPIKey != "" {
		return m.Store.PutSite(ctx, &socius.Site{APIKey: m.SiteAPIKey, Secret: m.SiteSecret, Name: "configured", CreatedAt: m.Clock.Now()})
	}
	sites, err := m.Store.Sites(ctx)
	if err != nil || len(sites) > 0 {
		return err
	}
	site := &socius.Site{APIKey: socius.NewAPIKey(), Secret: socius.NewSecret(), Name: "demo", CreatedAt: m.Clock.Now()}
	if err := m.Store.CreateSite(ctx, site); err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "socius: created a demo site\n  apiKey: %s\n  secret: %s\n", site.APIKey, site.Secret)
	return nil
}

// Wait blocks until ctx ends or a listener fails.
func (m *Main) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-m.done:
		return err
	}
}

// Close stops the listeners, lets calls in flight finish (up to 10 s) and closes the
// store.
func (m *Main) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var first error
	for _, srv := range m.servers {
		if err := srv.Shutdown(ctx); err != nil && first == nil {
			first = err
		}
	}
	m.servers = nil
	for _, ln := range m.listeners {
		ln.Close()
	}
	m.listeners = nil
	if m.stopHousekeeping != nil {
		m.stopHousekeeping()
		m.stopHousekeeping = nil
	}
	if err := m.exportOnExit(); err != nil && first == nil {
		first = err
	}
	if m.Store != nil {
		if err := m.Store.Close(); err != nil && first == nil {
			first = err
		}
		m.Store = nil
	}
	m.removeTempData()
	return first
}
