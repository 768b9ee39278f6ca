package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/http1"
	"github.com/socius/socius/metrics"
	"github.com/socius/socius/nonce"
	"github.com/socius/socius/postgres"
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
	// TrustedProxies is --trusted-proxies: the proxies whose X-Forwarded-For names the
	// client (server.ParseTrustedProxies); empty: none.
	TrustedProxies    string
	MaxBodyBytes      int64
	MaxHeaderBytes    int
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxConcurrent     int
	MaxConnections    int
	RateLimit         float64
	RateBurst         int
	AuthFailureLimit  float64
	AuthFailureBurst  int
	AdminAddr         string
	LogLevel          string
	LogFormat         string
	LogCalls          bool
	// FastPath serves the API listeners' common requests (HTTP and HTTPS) through
	// package http1 instead of net/http (not in emulator mode).
	FastPath bool
	// PprofAddr, when set, serves the Go profiler (net/http/pprof) on its own
	// listener: a debugging aid, never on by default.
	PprofAddr string
	// MasterKeyFile holds the key that encrypts secrets at rest; MasterKey is the
	// key itself, from SOCIUS_MASTER_KEY (never a flag: command lines are visible
	// to every user of the machine). Both empty: <data>/master.key, generated.
	MasterKeyFile string
	MasterKey     string
	// PreviousMasterKeyFile holds a master key that secrets may still be sealed with:
	// they open, and are sealed again with the current key at start.
	PreviousMasterKeyFile string
	// ShutdownTimeout bounds how long Close waits for calls in flight;
	// DefaultShutdownTimeout when zero.
	ShutdownTimeout time.Duration
	// Emulator mode: --emulator, --seed, --export-on-exit, ... (emulator.go).
	EmulatorOptions

	// Clock is the server's clock; tests inject one. The system clock when nil.
	Clock socius.Clock
	// Stdout receives what the user must see (addresses, demo credentials).
	Stdout io.Writer
	// LogOutput receives the logs; os.Stderr when nil. Logger, when set, replaces
	// both LogOutput and the log flags.
	LogOutput io.Writer
	Logger    *slog.Logger

	Store  socius.Store      // the store as the server sees it: timed, secrets sealed
	Nonces socius.NonceStore // shared in PostgreSQL, else this node's memory
	// Nonced is the store's, with PostgreSQL when NonceWithWork: a signed setUserInfo
	// or getUserInfo records its nonce with its own store work (server.Config.Nonced).
	Nonced        socius.NoncedUserStore
	NonceWithWork bool
	Server        *server.Server
	Metrics       *metrics.Registry
	Instruments   *metrics.Instruments
	CertFile      string // the certificate served over HTTPS
	HTTPURL       string // http://host:port once listening; empty when disabled
	HTTPSURL      string
	AdminURL      string // http://host:port of the admin listener; empty when disabled
	PprofURL      string // http://host:port/debug/pprof/ once listening; empty when disabled
	listeners     []net.Listener
	// wrapStore, when set (by tests), decorates the raw store under everything else:
	// fault injection.
	wrapStore       func(socius.Store) socius.Store
	httpsListenAddr string
	servers         []listenerServer
	adminServer     listenerServer // also in servers; stopped last by Close
	tunnels         sync.WaitGroup // open CONNECT tunnels
	tunnelPeers     tunnelPeers    // their clients' addresses, for the HTTPS side's logs
	silent          silentConns    // connections that have not sent a request yet
	done            chan error
	closing         atomic.Bool
	// serving is set once Run has every listener serving: /readyz answers 503 until
	// then, its admin listener serving from the moment it is bound. readyStore is the
	// store /readyz reads, set before serving.
	serving    atomic.Bool
	readyStore socius.Store
	// connStateSeen, when set (by tests), is told each API connection's state after
	// it is tracked: a test waits for a state instead of guessing how long the server
	// takes to reach it.
	connStateSeen func(net.Conn, http.ConnState)

	stopHousekeeping func()
	// With PostgreSQL: the longest --clock-skew of the database's nodes (nanoseconds),
	// for as long as nonces are remembered, refreshed by housekeeping; and the store
	// that shares it.
	nonceWindow atomic.Int64
	windows     *postgres.Store
	dataLock    *dataLock // serve.lock of the data folder (the embedded store only)
	// The embedded store's start, when the nonces of the requests before it are lost
	// (restoreNonces).
	notBefore time.Time
	conns     connCap // the API listeners' connections (--max-connections)
	// siteBeforeSeed: what configureSite did with --site-api-key's site before a
	// --seed loaded (siteNone without a seed), said then; prepareSite, after the seed,
	// says only what it changed.
	siteBeforeSeed siteDone
}

// Defaults of the HTTP server limits.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultMaxConcurrent     = 1024
	DefaultMaxConnections    = 10000
)

// The largest --max-body-bytes and --max-concurrent: beyond them the body budget
// (their product, and 8 times a body read and thrown away) would overflow.
const (
	maxBodyLimit       = 1 << 30
	maxConcurrentLimit = 1 << 20
)

// NewMain returns a Main with the defaults of `socius serve`.
func NewMain() *Main {
	return &Main{
		HTTPAddr:          "127.0.0.1:8080",
		HTTPSAddr:         "127.0.0.1:8443",
		DataDir:           "socius-data",
		ClockSkew:         server.DefaultSkew,
		MaxBodyBytes:      server.DefaultMaxBodyBytes,
		MaxHeaderBytes:    DefaultMaxHeaderBytes,
		FastPath:          true,
		NonceWithWork:     true,
		ReadHeaderTimeout: DefaultReadHeaderTimeout,
		ReadTimeout:       DefaultReadTimeout,
		WriteTimeout:      DefaultWriteTimeout,
		IdleTimeout:       DefaultIdleTimeout,
		MaxConcurrent:     DefaultMaxConcurrent,
		MaxConnections:    DefaultMaxConnections,
		AdminAddr:         "127.0.0.1:9090",
		LogLevel:          "info",
		LogFormat:         "text",
		LogCalls:          true,
		Stdout:            os.Stdout,
	}
}

// DefaultShutdownTimeout is how long a stopping Socius waits for calls in flight.
const DefaultShutdownTimeout = 10 * time.Second

// ParseFlags reads `socius serve` flags, then SOCIUS_* variables for flags not given.
func (m *Main) ParseFlags(args []string, lookupEnv func(string) (string, bool), errOut io.Writer) (err error) {
	fs := newFlagSet("socius serve", m.Stdout, errOut)
	fs.StringVar(&m.HTTPAddr, "http", m.HTTPAddr, "plain HTTP listen address (empty disables)")
	fs.StringVar(&m.HTTPSAddr, "https", m.HTTPSAddr, "HTTPS listen address (empty disables)")
	fs.StringVar(&m.DataDir, "data", m.DataDir, "data folder: the SQLite store, the master key and the generated TLS certificate")
	fs.StringVar(&m.StoreURL, "store", m.StoreURL, storeHelp)
	fs.StringVar(&m.TLSCert, "tls-cert", m.TLSCert, "TLS certificate file (PEM); a self-signed one is generated when left out")
	fs.StringVar(&m.TLSKey, "tls-key", m.TLSKey, "TLS private key file (PEM)")
	fs.StringVar(&m.SiteAPIKey, "site-api-key", m.SiteAPIKey, "make sure a site with this apiKey exists at start (with --site-secret)")
	fs.StringVar(&m.SiteSecret, "site-secret", m.SiteSecret, "the partner secret of --site-api-key (standard base64, at least 16 bytes)")
	fs.DurationVar(&m.ClockSkew, "clock-skew", m.ClockSkew, "how far a signed request's timestamp may be from the server's clock")
	fs.BoolVar(&m.TrustForwardedProto, "trust-forwarded-proto", m.TrustForwardedProto, "honour X-Forwarded-Proto: https from a TLS-terminating proxy")
	fs.StringVar(&m.TrustedProxies, "trusted-proxies", m.TrustedProxies, "comma-separated IPs and CIDR prefixes of the proxies in front of Socius (127.0.0.1,10.0.0.0/8,::1): from them, the client's address is read from X-Forwarded-For, and X-Forwarded-Proto is honoured from them only (empty: none, default)")
	fs.Int64Var(&m.MaxBodyBytes, "max-body-bytes", m.MaxBodyBytes, "largest request body accepted (413001 beyond); at most 1 GiB")
	fs.IntVar(&m.MaxHeaderBytes, "max-header-bytes", m.MaxHeaderBytes, "largest request header block (HTTP 431 beyond)")
	fs.DurationVar(&m.ReadHeaderTimeout, "read-header-timeout", m.ReadHeaderTimeout, "time allowed to send the request headers")
	fs.DurationVar(&m.ReadTimeout, "read-timeout", m.ReadTimeout, "time allowed to send the whole request, body included")
	fs.DurationVar(&m.WriteTimeout, "write-timeout", m.WriteTimeout, "time allowed from the end of the headers to the end of the answer")
	fs.DurationVar(&m.IdleTimeout, "idle-timeout", m.IdleTimeout, "how long an idle keep-alive connection stays open")
	fs.IntVar(&m.MaxConnections, "max-connections", m.MaxConnections, "connections the API listeners (HTTP and HTTPS together) hold open at most; more are closed as they arrive (0: no cap; lowered to leave 1024 of the process's file descriptors free)")
	fs.IntVar(&m.MaxConcurrent, "max-concurrent", m.MaxConcurrent, "calls in progress at most, counted once a call's request is read; more are answered 403048 at once (0: no cap; at most 1048576); also caps the request bodies held at once at this many times --max-body-bytes")
	fs.Float64Var(&m.RateLimit, "rate-limit", m.RateLimit, "calls a second allowed per apiKey on this node, 403048 beyond (0: no limit)")
	fs.IntVar(&m.RateBurst, "rate-burst", m.RateBurst, "calls per apiKey allowed at once, with --rate-limit only (0: the rate, rounded up)")
	fs.Float64Var(&m.AuthFailureLimit, "auth-failure-limit", m.AuthFailureLimit, "failed authentications a second allowed per client address on this node; beyond, every call from it is answered 403048 before authentication until it may try again (0: no limit, default)")
	fs.IntVar(&m.AuthFailureBurst, "auth-failure-burst", m.AuthFailureBurst, "failed authentications per client address allowed at once, with --auth-failure-limit only (0: the rate, rounded up)")
	fs.StringVar(&m.AdminAddr, "admin", m.AdminAddr, "admin listener for /metrics, /healthz, /readyz (empty disables)")
	fs.StringVar(&m.LogLevel, "log-level", m.LogLevel, "debug, info, warn or error")
	if m.ShutdownTimeout == 0 {
		m.ShutdownTimeout = DefaultShutdownTimeout
	}
	fs.DurationVar(&m.ShutdownTimeout, "shutdown-timeout", m.ShutdownTimeout, "on SIGTERM, SIGINT or SIGHUP, how long calls in flight may take to finish")
	fs.StringVar(&m.LogFormat, "log-format", m.LogFormat, "text or json")
	fs.BoolVar(&m.LogCalls, "log-calls", m.LogCalls, "log one line per call at info level")
	fs.BoolVar(&m.NonceWithWork, "nonce-with-work", m.NonceWithWork, "with PostgreSQL, a signed setUserInfo or getUserInfo records its nonce in the same database operation as its own work (docs/postgresql.md); false: a round trip of its own")
	fs.BoolVar(&m.FastPath, "fast-path", m.FastPath, "serve API requests of the common shape, over HTTP and HTTPS, without net/http (docs/operations.md); false: net/http for all")
	fs.StringVar(&m.PprofAddr, "pprof", m.PprofAddr, "debugging: serve the Go profiler (/debug/pprof/) on this address; keep it private")
	fs.StringVar(&m.MasterKeyFile, "master-key-file", m.MasterKeyFile, "file holding the master key that encrypts secrets at rest (default: the variable SOCIUS_MASTER_KEY, else <data>/master.key, generated)")
	fs.StringVar(&m.PreviousMasterKeyFile, "previous-master-key-file", m.PreviousMasterKeyFile, previousKeyHelp)
	m.registerEmulatorFlags(fs)
	if err := parse(fs, args, lookupEnv); err != nil {
		return err
	}
	// What follows checks the values given: a refusal is a usage error too (exit 2),
	// which names the variable that gave the value, if one did.
	defer func() {
		err = envNamed(fs, err)
		if fe := (flagError{}); err != nil && !errors.As(err, &fe) {
			err = flagError{err}
		}
	}()
	if err := m.checkEmulatorFlags(fs); err != nil {
		return err
	}
	if m.Emulator && !flagGiven(fs, "admin") {
		// Several emulators often share a CI host: only an admin listener asked for
		// may take a fixed port (the emulator's own API is under /_emulator/).
		m.AdminAddr = ""
	}
	if err := emptyKeyFiles(fs); err != nil {
		return err
	}
	if v, ok := lookupEnv("SOCIUS_MASTER_KEY"); ok {
		m.MasterKey = v
	}
	for _, name := range []string{"site-api-key", "site-secret"} {
		if givenEmpty(fs, name) {
			// "--site-api-key $KEY --site-secret $SECRET" with the variables unset:
			// serve started without the site a CI setup meant, whose calls then
			// failed with 400093, far from the cause.
			return fmt.Errorf("--%s is empty (an unset variable?): give it, or leave --site-api-key and --site-secret out", name)
		}
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
	if givenEmpty(fs, "store") {
		return errEmptyStore
	}
	if err := checkStore(m.StoreURL); err != nil {
		return err
	}
	if isPostgres(m.StoreURL) && m.MasterKeyFile == "" && m.MasterKey == "" {
		return errNoMasterKey
	}
	if m.MasterKeyFile != "" && m.MasterKey != "" {
		return errTwoMasterKeys
	}
	if m.ClockSkew <= 0 {
		return errors.New("--clock-skew must be positive")
	}
	if _, err := server.ParseTrustedProxies(m.TrustedProxies); err != nil {
		return fmt.Errorf("--trusted-proxies: %v", err)
	}
	if m.DataDir == "" && !isPostgres(m.StoreURL) {
		return errEmptyData
	}
	if m.ShutdownTimeout <= 0 {
		return errors.New("--shutdown-timeout must be positive")
	}
	for _, f := range []struct{ name, what string }{{"tls-cert", "certificate"}, {"tls-key", "private key"}} {
		if givenEmpty(fs, f.name) {
			// "--tls-cert $CERT --tls-key $KEY" with the variables unset: a generated
			// self-signed certificate was served in place of the one meant.
			return fmt.Errorf("--%s is empty (an unset variable?): give the %s file (PEM), or leave --tls-cert and --tls-key out for a generated self-signed certificate", f.name, f.what)
		}
	}
	if m.HTTPAddr == "" && m.HTTPSAddr == "" {
		return errors.New("both listeners are disabled: give --http or --https")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"--read-header-timeout", m.ReadHeaderTimeout}, {"--read-timeout", m.ReadTimeout}, {"--write-timeout", m.WriteTimeout}, {"--idle-timeout", m.IdleTimeout}} {
		if d.v <= 0 {
			return fmt.Errorf("%s must be positive: an unbounded timeout lets a slow client hold a connection forever", d.name)
		}
	}
	switch {
	case m.MaxBodyBytes <= 0 || m.MaxBodyBytes > maxBodyLimit:
		return fmt.Errorf("--max-body-bytes must be positive and at most %d (1 GiB)", maxBodyLimit)
	case m.MaxHeaderBytes <= 0:
		return errors.New("--max-header-bytes must be positive")
	case m.MaxConnections < 0:
		return errors.New("--max-connections must be 0 (no cap) or positive")
	case m.MaxConcurrent < 0 || m.MaxConcurrent > maxConcurrentLimit:
		return fmt.Errorf("--max-concurrent must be 0 (no cap) or positive, at most %d", maxConcurrentLimit)
	case math.IsNaN(m.RateLimit) || math.IsInf(m.RateLimit, 0):
		return errors.New("--rate-limit must be a number of calls a second (0: off)")
	case m.RateLimit < 0:
		// Each flag of the pair said alone: a refusal is said under the variable
		// that gave the flag it begins with (envNamed), which must be the one refused.
		return errors.New("--rate-limit must be 0 (off, default) or positive")
	case m.RateBurst < 0:
		return errors.New("--rate-burst must be 0 (off, default) or positive")
	case m.RateBurst > 0 && m.RateLimit == 0:
		return errors.New("--rate-burst needs --rate-limit (without it there is no limit to burst above)")
	case math.IsNaN(m.AuthFailureLimit) || math.IsInf(m.AuthFailureLimit, 0):
		return errors.New("--auth-failure-limit must be a number of failed authentications a second (0: off)")
	case m.AuthFailureLimit < 0:
		return errors.New("--auth-failure-limit must be 0 (off, default) or positive")
	case m.AuthFailureBurst < 0:
		return errors.New("--auth-failure-burst must be 0 (off, default) or positive")
	case m.AuthFailureBurst > 0 && m.AuthFailureLimit == 0:
		return errors.New("--auth-failure-burst needs --auth-failure-limit (without it there is no limit to burst above)")
	case (m.TLSCert != "" || m.TLSKey != "") && m.HTTPSAddr == "":
		return errors.New("--tls-cert and --tls-key are for the HTTPS listener, which --https \"\" disables")
	case (m.TLSCert == "") != (m.TLSKey == ""):
		return errors.New("--tls-cert and --tls-key go together")
	case m.LogFormat != "text" && m.LogFormat != "json":
		return fmt.Errorf("--log-format %q: text or json", m.LogFormat)
	}
	if _, err := parseLogLevel(m.LogLevel); err != nil {
		return err
	}
	for _, l := range m.listenFlags() {
		if err := checkListenAddr(*l.addr); err != nil {
			return fmt.Errorf("%s %q: %v", l.flag, *l.addr, err)
		}
	}
	return nil
}

// listenFlag is a listener's flag and its address ("": not listening).
type listenFlag struct {
	flag string
	addr *string
}

// listenFlags returns the listeners' flags, in the order Run binds them.
func (m *Main) listenFlags() []listenFlag {
	return []listenFlag{{"--https", &m.HTTPSAddr}, {"--http", &m.HTTPAddr}, {"--pprof", &m.PprofAddr}, {"--admin", &m.AdminAddr}}
}

// checkListenAddr checks the form of a listener's address: host:port, the host
// possibly empty (every interface), the port a number from 0 (any free port) to 65535
// or a service name.
func checkListenAddr(addr string) error {
	if addr == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port, such as 127.0.0.1:8080 or :8080")
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("the port %q is not a number from 0 to 65535", port)
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
		out := m.LogOutput
		if out == nil {
			out = os.Stderr
		}
		if m.Logger, err = newLogger(out, m.LogFormat, m.LogLevel); err != nil {
			return err
		}
	}
	if err := m.prepareEmulator(); err != nil {
		return err
	}
	if m.Clock == nil {
		m.Clock = socius.SystemClock{}
	}
	defer func() {
		if err != nil {
			// A start that fails before its first API listener serves (every failure
			// does) served no request: a folder new to serve is left as new, without
			// serve.lock, nor nonces for Close to save (it has none; saveNonces).
			if m.HTTPSURL == "" && m.HTTPURL == "" && m.dataLock != nil && m.dataLock.made {
				m.dataLock.unmake()
				m.dataLock = nil
			}
			m.Close()
		}
	}()
	m.Metrics = metrics.NewRegistry()
	m.Instruments = metrics.NewInstruments(m.Metrics)
	// A certificate of the user's is read before anything is made, so that a wrong
	// path or a bad file fails the start with no data folder, master key or store
	// created (and no demo secret printed).
	var cert tls.Certificate
	var certPath string
	if m.HTTPSAddr != "" && m.TLSCert != "" {
		if cert, certPath, _, err = loadOrCreateCert(m.TLSCert, m.TLSKey, m.DataDir); err != nil {
			return certFilesError(m.TLSCert, m.TLSKey, err)
		}
	} else if m.HTTPSAddr != "" {
		// So is the data folder's own, or, on the first start, the folder is checked
		// to take it.
		if cert, certPath, err = checkSelfSigned(m.DataDir); err != nil {
			return err
		}
	}
	// So is the emulator's seed, whole: one that cannot be read, or that holds a line
	// it refuses, fails the start before the store is opened.
	if err := m.readSeed(); err != nil {
		return err
	}
	// So are the master keys given, and the listeners are bound: a missing key file,
	// or an address taken (or not this machine's), fails the start before anything
	// is made.
	sc := storeConfig{
		spec: m.StoreURL, data: m.DataDir, masterKeyFile: m.MasterKeyFile, masterKey: m.MasterKey,
		previousKeyFile: m.PreviousMasterKeyFile, wrap: m.Instruments.Store, out: m.Stdout,
		busyTimeout: sqliteBusyTimeout(m.WriteTimeout), temporary: m.tempData != "", logger: m.Logger,
	}
	if inner := m.wrapStore; inner != nil {
		sc.wrap = func(st socius.Store) socius.Store { return m.Instruments.Store(inner(st)) }
	}
	if err := sc.readKeys(); err != nil {
		return err
	}
	// The listeners not yet serving are closed on a failure below.
	lns := map[string]net.Listener{}
	defer func() {
		if err != nil {
			for _, ln := range lns {
				ln.Close()
			}
		}
	}()
	for _, l := range m.listenFlags() {
		if *l.addr == "" {
			continue
		}
		ln, lerr := net.Listen("tcp", *l.addr)
		if errors.Is(lerr, syscall.EADDRINUSE) {
			// The usual first failure (a Socius, or another server, started before):
			// say what to do, and how to have a free port picked.
			return fmt.Errorf("%s: %w: another process listens on %s (a socius serve started before?); stop it, or give another address with %s HOST:PORT (or %s); port 0 picks a free one, which the start prints",
				l.flag, lerr, *l.addr, l.flag, envName(strings.TrimPrefix(l.flag, "--")))
		}
		if lerr != nil {
			return fmt.Errorf("%s: %w", l.flag, lerr)
		}
		lns[l.flag] = ln
	}
	m.done = make(chan error, len(lns))
	// The admin listener serves from now on, so that a liveness probe of /healthz is
	// answered through a start that takes long (a PostgreSQL migration waiting for a
	// lock, a large seed), while /readyz answers 503 until the API listeners serve.
	// Close stops it last, after the API listeners have drained.
	var adminWhere string
	if ln := lns["--admin"]; ln != nil {
		delete(lns, "--admin")
		m.AdminURL, adminWhere = listenURL("http", m.AdminAddr, ln)
		m.serve(ln, m.adminHandler())
		m.adminServer = m.servers[len(m.servers)-1]
	}
	m.sayTempData()
	if n, limit := m.conns.setMax(m.MaxConnections); limit > 0 {
		m.Logger.Warn(fmt.Sprintf("--max-connections %d lowered to %d: the process may open %d files, of which %d are kept for the store and the admin listener where it can", m.MaxConnections, n, limit, fdReserve))
	}
	fresh := false // no serve ever ran on this data folder: no request was served from it
	if !isPostgres(m.StoreURL) {
		if m.dataLock, err = lockDataDir(m.DataDir); err != nil {
			return err
		}
		fresh = m.dataLock.made
		if !fresh {
			if err := storeGone(m.DataDir); err != nil {
				return err
			}
		}
	}
	st, err := sc.open(ctx)
	if err != nil {
		return err
	}
	m.Store, m.Nonces = st.store, st.nonces
	m.readyStore = st.raw
	if l, ok := st.raw.(interface{ SetLogger(*slog.Logger) }); ok {
		l.SetLogger(m.Logger) // the embedded store's checkpoints that fail
	}
	m.restoreNonces(fresh)
	if isPostgres(m.StoreURL) {
		m.Nonces = m.Instruments.Nonces(st.nonces) // a write to the database per signed call
		if nonced, ok := st.nonces.(socius.NoncedUserStore); ok && m.NonceWithWork {
			m.Nonced = m.Instruments.Nonced(nonced) // that write with the call's own
		}
	}
	if pg, ok := st.raw.(*postgres.Store); ok {
		// Before the first call: this node's window counts for the others' nonces
		// from now on, and theirs for its own.
		m.windows = pg
		m.checkEmbeddedLeft()
		if err := m.shareNonceWindow(ctx); err != nil {
			return fmt.Errorf("share the nonce window: %w", err)
		}
		for _, a := range pg.Advice(ctx) {
			m.Logger.Warn("postgres: " + a)
		}
		// A signed write may wait out two store deadlines (its site's lookup, its work)
		// before its nonce is recorded alone within what the write timeout leaves
		// (server.answerBy): a shorter write timeout cuts such a call off unanswered.
		if need := 2*pg.OpTimeout + time.Second; m.WriteTimeout < need {
			m.Logger.Warn(fmt.Sprintf("--write-timeout %v is shorter than %v: a call held by a database that does not answer may wait out two PostgreSQL store deadlines (%v each: its site's lookup, its work) and then be cut off with no answer at all instead of its 500028; give at least %v",
				m.WriteTimeout, need, pg.OpTimeout, need))
		}
	}
	fmt.Fprintf(m.Stdout, "socius: store: %s\n", describeStore(m.StoreURL, m.DataDir))
	if m.seed != nil && m.SiteAPIKey != "" {
		// --site-api-key's site is there before the seed loads, so that the seed's keys
		// and users may name it, and said now, before the seed's line; after the seed
		// it is given the flag's secret again (prepareSite).
		did, err := m.configureSite(ctx, false)
		if err != nil {
			return err
		}
		m.siteBeforeSeed = did
		fmt.Fprint(m.Stdout, siteLine(m.SiteAPIKey, did))
	}
	if err := m.seedEmulator(ctx); err != nil {
		return err
	}
	if err := m.prepareSite(ctx); err != nil {
		return err
	}
	proxies, err := server.ParseTrustedProxies(m.TrustedProxies)
	if err != nil {
		return fmt.Errorf("--trusted-proxies: %v", err)
	}
	observe := m.Instruments.ObserveCall
	if m.LogCalls {
		logCall := server.LogCalls(m.Logger)
		observe = func(c *server.Call) {
			m.Instruments.ObserveCall(c)
			logCall(c)
		}
	}
	cfg := server.Config{
		Store:               m.Store,
		Nonces:              m.Nonces,
		Nonced:              m.Nonced,
		Clock:               m.Clock,
		Skew:                m.ClockSkew,
		NonceWindow:         func() time.Duration { return time.Duration(m.nonceWindow.Load()) },
		NotBefore:           m.notBefore,
		TrustForwardedProto: m.TrustForwardedProto,
		TrustedProxies:      proxies,
		MaxBodyBytes:        m.MaxBodyBytes,
		MaxConcurrent:       m.MaxConcurrent,
		WriteTimeout:        m.WriteTimeout,
		RateLimit:           m.RateLimit,
		RateBurst:           m.RateBurst,
		AuthFailureLimit:    m.AuthFailureLimit,
		AuthFailureBurst:    m.AuthFailureBurst,
		Logger:              m.Logger,
		Observe:             observe,
	}
	m.configureEmulator(&cfg)
	m.Server = server.New(cfg)
	if cache, ok := m.Nonces.(*nonce.Cache); ok { // PostgreSQL keeps them in the database
		m.Metrics.NewGaugeFunc("socius_nonce_cache_size", fmt.Sprintf("Nonces remembered by this node to refuse replays (at most %d; then new signed calls get 403048).", nonce.DefaultMax),
			func() float64 { return float64(cache.Len(m.Clock.Now())) })
	}
	m.Metrics.NewGaugeFunc("socius_connections_open", fmt.Sprintf("Connections the API listeners hold open (at most %d, --max-connections; 0 is no cap).", m.conns.max),
		func() float64 { return float64(m.conns.open.Load()) })
	refused := m.Metrics.NewCounter("socius_connections_refused_total", "Connections closed as they arrived, the API listeners holding --max-connections already.").With()
	m.conns.refused = refused.Inc
	m.Metrics.NewGaugeFunc("socius_calls_in_flight", fmt.Sprintf("Calls in progress, their requests read (--max-concurrent is %d; 0 is no cap).", m.MaxConcurrent),
		func() float64 { return float64(m.Server.InFlight()) })
	m.Metrics.NewGaugeFunc("socius_request_body_bytes", "Bytes of request bodies held: being received, or of calls in progress (at most --max-concurrent times --max-body-bytes).",
		func() float64 { return float64(m.Server.BodyBytes()) })
	m.Metrics.NewGaugeFunc("socius_auth_failure_addresses", fmt.Sprintf("Client addresses tracked by the limit on failed authentications, --auth-failure-limit (at most %d; 0 when the limit is off).", server.MaxAuthFailureAddresses),
		func() float64 { return float64(m.Server.AuthFailureAddresses()) })
	m.Metrics.NewGauge("socius_build_info", "Always 1; the labels tell the version of Socius and of Go.", "version", "goversion").
		With(buildVersion(), runtime.Version()).Set(1)
	metrics.RegisterProcess(m.Metrics)
	m.Logger.Info("socius starting", "version", buildVersion(), "data", m.DataDir, "masterKey", st.keySource)
	m.startHousekeeping()
	if m.HTTPSAddr != "" {
		if certPath == "" { // the data folder's, made on the first start
			var created bool
			if cert, certPath, created, err = loadOrCreateCert("", "", m.DataDir); err != nil {
				var pe *fs.PathError
				if errors.As(err, &pe) && errors.Is(err, fs.ErrPermission) {
					return selfSignedUnwritable(m.DataDir, pe.Path, err)
				}
				return fmt.Errorf("TLS certificate: %w", err)
			}
			if created {
				fmt.Fprintf(m.Stdout, "socius: generated a self-signed TLS certificate: %s\n", certPath)
			}
		}
		m.CertFile = certPath
		ln := lns["--https"]
		delete(lns, "--https") // served from here on: Close closes it
		var where string
		m.HTTPSURL, where = listenURL("https", m.HTTPSAddr, ln)
		m.httpsListenAddr = ln.Addr().String()
		handler := m.apiHandler()
		if m.HTTPAddr != "" { // the HTTP listener tunnels to this one
			handler = m.tunnelPeers.clientAddr(handler)
		}
		tln := tls.NewListener(m.conns.listener(ln), &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		if m.FastPath && m.Emu == nil {
			m.serveFast(tln, handler)
		} else {
			m.serve(tln, handler)
		}
		fmt.Fprintf(m.Stdout, "socius: serving HTTPS on %s%s (certificate %s)\n", m.HTTPSURL, where, certPath)
	}
	if m.HTTPAddr != "" {
		ln := lns["--http"]
		delete(lns, "--http")
		var where string
		m.HTTPURL, where = listenURL("http", m.HTTPAddr, ln)
		ln = m.conns.listener(ln)
		handler := m.apiHandler()
		if m.httpsListenAddr != "" {
			handler = tunnelToSelf(m.httpsListenAddr, m.WriteTimeout, handler, &m.tunnels, &m.tunnelPeers, m.Logger)
		}
		if m.FastPath && m.Emu == nil {
			m.serveFast(ln, handler)
		} else {
			m.serve(ln, handler)
		}
		fmt.Fprintf(m.Stdout, "socius: serving HTTP on %s%s\n", m.HTTPURL, where)
	}
	if m.PprofAddr != "" {
		ln := lns["--pprof"]
		delete(lns, "--pprof")
		base, where := listenURL("http", m.PprofAddr, ln)
		m.PprofURL = base + "/debug/pprof/"
		m.serve(ln, pprofHandler())
		fmt.Fprintf(m.Stdout, "socius: serving pprof on %s%s\n", m.PprofURL, where)
		if !loopbackAddr(m.PprofAddr) {
			// The profiler has no authentication, and a profile or a trace slows every
			// call while it runs: said, as the flag's help says to keep it private.
			m.Logger.Warn(fmt.Sprintf("--pprof %s is not a loopback address: whoever reaches it may profile this server (a CPU profile or a trace slows every call while it runs) and read its goroutines' stacks, with no authentication; "+
				"serve it on 127.0.0.1 and reach it through an SSH tunnel or kubectl port-forward", m.PprofAddr))
		}
	}
	if m.AdminURL != "" {
		// Said last, as before it served from the start: /readyz says ready from now.
		fmt.Fprintf(m.Stdout, "socius: serving /metrics, /healthz and /readyz on %s%s\n", m.AdminURL, adminWhere)
	}
	m.serving.Store(true)
	m.emulatorStarted()
	return nil
}

// listenURL is the URL serve says for a listener: the host as the flag asked for it (a
// name stays a name), with the port the listener got (for port 0). Go reports a
// wildcard listener as [::]:PORT whatever was asked (0.0.0.0:PORT too), which reads as
// an IPv6 address alone. For a wildcard, which takes the connections of every
// interface, where is " (all interfaces)" and the host 0.0.0.0 when the flag gave
// none (:PORT); else where is empty.
func listenURL(scheme, asked string, ln net.Listener) (url, where string) {
	host, _, _ := net.SplitHostPort(asked)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		where = " (all interfaces)"
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return scheme + "://" + net.JoinHostPort(host, port), where
}

// pprofHandler serves the Go profiler's endpoints.
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	// No /debug/pprof/cmdline: the command line may hold --site-secret.
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return httpTargetsOnly(mux)
}

// httpServer is the http.Server of every listener (and of the bench's baseline, which
// must be configured alike).
func (m *Main) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		ConnState: m.trackConn,
		Handler:   closeDoubtfulFraming(h),
		// "OPTIONS *" reaches the handler, which answers it with an envelope like any
		// other request; Go's own answer is an empty 200, which an SDK reads as success.
		DisableGeneralOptionsHandler: true,
		ReadHeaderTimeout:            m.ReadHeaderTimeout,
		ReadTimeout:                  m.ReadTimeout,
		WriteTimeout:                 m.WriteTimeout,
		IdleTimeout:                  m.IdleTimeout,
		MaxHeaderBytes:               m.MaxHeaderBytes,
		ErrorLog:                     serverLog(m.Logger),
	}
}

// closeDoubtfulFraming makes net/http close a connection after its answer to a request
// whose framing a proxy in front may have read another way (request smuggling), RFC
// 9112 6.1:
//   - A request whose body came chunked. One with both Transfer-Encoding and
//     Content-Length must end its connection after the answer, or a proxy that framed
//     it by its Content-Length reads what follows differently. net/http (Go 1.26) reads
//     such a request as chunked, keeps the connection, and deletes the Content-Length
//     before a handler could see it, so every chunked request closes its connection.
//   - Every HTTP/1.0 request. One with a Transfer-Encoding must be taken as faulty
//     framing and end its connection; net/http ignores the header and frames the body
//     by its Content-Length (empty without one), keeps a keep-alive connection, and
//     deletes the header before a handler could see it. HTTP/1.0 keeps a connection
//     only when asked (Connection: keep-alive), which no SDK sends.
//
// The client's next request comes on a new connection, whose requests the fast path
// checks. The fast path refuses the two headers together itself and never gets here.
func closeDoubtfulFraming(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TransferEncoding) > 0 || !r.ProtoAtLeast(1, 1) {
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}

// trackConn is the ConnState hook of every API listener's server: it keeps the silent
// connections, and tells connStateSeen when a test set it.
func (m *Main) trackConn(c net.Conn, state http.ConnState) {
	m.silent.track(c, state)
	if seen := m.connStateSeen; seen != nil {
		seen(c, state)
	}
}

// listenerServer is what serves a listener: net/http's server, or http1's in front of
// one.
type listenerServer interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

func (m *Main) serve(ln net.Listener, h http.Handler) {
	m.run(ln, m.httpServer(h))
}

// serveFast serves ln through package http1, with net/http, configured as for every
// listener, for the connections it hands over.
func (m *Main) serveFast(ln net.Listener, h http.Handler) {
	fallback := m.httpServer(h)
	m.run(ln, &http1.Server{
		Handler:           h,
		Fallback:          fallback,
		ReadHeaderTimeout: m.ReadHeaderTimeout,
		ReadTimeout:       m.ReadTimeout,
		WriteTimeout:      m.WriteTimeout,
		IdleTimeout:       m.IdleTimeout,
		MaxHeaderBytes:    m.MaxHeaderBytes,
		ConnState:         m.trackConn,
		ErrorLog:          fallback.ErrorLog,
	})
}

func (m *Main) run(ln net.Listener, srv listenerServer) {
	m.listeners = append(m.listeners, ln)
	m.servers = append(m.servers, srv)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.done <- err
		}
	}()
}

// prepareSite makes sure the site of --site-api-key exists with that secret, saying
// so in a line with its apiKey, or, on an empty store, creates a demo site and prints
// its credentials.
func (m *Main) prepareSite(ctx context.Context) error {
	if m.SiteAPIKey != "" {
		afterSeed := m.siteBeforeSeed != siteNone
		did, err := m.configureSite(ctx, afterSeed)
		if err != nil {
			return err
		}
		switch {
		case !afterSeed:
			fmt.Fprint(m.Stdout, siteLine(m.SiteAPIKey, did))
		case did == siteReplaced:
			// Its line came before the seed's; this one, after it, says what the seed
			// changed and the flag put back.
			fmt.Fprintf(m.Stdout, "socius: site %s (--site-api-key): the seed's secret for it replaced by --site-secret's\n", m.SiteAPIKey)
		}
		return nil
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

// A siteDone is what configureSite did with --site-api-key's site.
type siteDone int

const (
	siteNone     siteDone = iota // not run (before a seed: there was none)
	siteUsed                     // stored with --site-secret's secret already
	siteCreated                  // not stored: created
	siteReplaced                 // stored with another secret: replaced by the flag's
)

// configureSite stores the site of --site-api-key with --site-secret's secret, when it
// is not stored so, and tells what it did. afterSeed: a --seed loaded since its last
// run, so a secret it replaces is the seed's, not one of the store's clients.
func (m *Main) configureSite(ctx context.Context, afterSeed bool) (siteDone, error) {
	// The secret is the flag's, without whitespace (as secretOrNew stores it); a site
	// that exists keeps its name.
	site := &socius.Site{APIKey: m.SiteAPIKey, Secret: socius.CompactSecret(m.SiteSecret), Name: "configured", CreatedAt: m.Clock.Now()}
	old, err := m.Store.Site(ctx, m.SiteAPIKey)
	switch {
	case err == nil && socius.SecretsEqual(old.Secret, site.Secret):
		// Stored so: nothing to write (a start on a full disk works too).
		return siteUsed, nil
	case err == nil:
		site.Name = old.Name
	case !errors.Is(err, socius.ErrNotFound):
		return siteNone, err
	}
	if err := m.Store.PutSite(ctx, site); err != nil {
		return siteNone, err
	}
	switch {
	case old == nil:
		return siteCreated, nil
	case afterSeed:
		m.Logger.Warn(fmt.Sprintf("--seed %s gave site %s another secret than --site-secret's: the flag's is kept, and calls signed with the seed's fail with 403003", m.Seed, m.SiteAPIKey))
	default:
		// Said, for it is easy to do by mistake: a node restarted with the flags of
		// before a rotation (an old unit file) puts the old secret back, for every node
		// of a shared store, and the clients signing with the new one fail.
		m.Logger.Warn(fmt.Sprintf("--site-secret replaced the stored secret of site %s (for every node of the store): calls signed with the secret it had now fail with 403003; if that secret was rotated since these flags were written, give this node the new one", m.SiteAPIKey))
	}
	return siteReplaced, nil
}

// siteLine is the line that says what serve did with --site-api-key's site: its apiKey
// alone, as the user gave the secret (the demo site's lines print both, the secret
// being new). With a seed, it is printed before the seed's line, and a second line
// after it says when the seed's secret for the site was replaced by the flag's.
func siteLine(apiKey string, did siteDone) string {
	switch did {
	case siteCreated:
		return "socius: created site " + apiKey + " (--site-api-key)\n"
	case siteReplaced:
		return "socius: using site " + apiKey + " (--site-api-key), its secret replaced by --site-secret's\n"
	}
	return "socius: using site " + apiKey + " (--site-api-key)\n"
}

// warnWALLeft says so when the embedded store closed but its WAL stays: SQLite's last
// checkpoint, which copies it into socius.db and removes it, failed without a word (a
// full disk). Nothing is lost (the next start recovers the WAL), but an operator
// freeing space, or copying socius.db alone, must know.
func (m *Main) warnWALLeft() {
	wal := filepath.Join(m.DataDir, "socius.db-wal")
	if fi, err := os.Stat(wal); err == nil && fi.Size() > 0 {
		m.Logger.Warn("the store closed but its write-ahead log stays: it could not be copied into socius.db (is the disk full?); the next start recovers it. Keep the two files together",
			"wal", wal, "walBytes", fi.Size())
	}
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

// Close stops Socius. Every API listener stops accepting at once; calls in flight
// finish, for up to ShutdownTimeout (past it, their connections are cut and Close
// reports it); the admin listener, whose /readyz says 503 meanwhile, stops after them;
// only then is the store closed, so that it is closed with nothing left to write and
// everything acknowledged is in it.
func (m *Main) Close() error {
	m.closing.Store(true)
	if m.Emu != nil {
		m.Emu.Log.StopWaiting() // the emulator's long polls answer now
	}
	if m.Server != nil {
		m.Server.StopDelays() // and calls delayed by its fault rules
	}
	timeout := m.ShutdownTimeout
	if timeout <= 0 {
		timeout = DefaultShutdownTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var api []listenerServer
	for _, srv := range m.servers {
		if srv != m.adminServer {
			api = append(api, srv)
		}
	}
	// In parallel: Shutdown closes its listener first, then waits; one after the other,
	// a listener would keep accepting while another server drains.
	stopReaping := m.silent.reap(time.Now())
	defer stopReaping()
	errs := make(chan error, len(api))
	for _, srv := range api {
		go func() { errs <- srv.Shutdown(ctx) }()
	}
	var first error
	for range api {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first == nil {
		// The servers have answered every call, some through tunnels: let those
		// answers through (the HTTPS server has closed its side, so each tunnel ends).
		tunnelsDone := make(chan struct{})
		go func() {
			m.tunnels.Wait()
			close(tunnelsDone)
		}()
		select {
		case <-tunnelsDone:
		case <-ctx.Done():
		}
	}
	if m.adminServer != nil {
		if err := m.adminServer.Shutdown(ctx); err != nil && first == nil {
			first = err
		}
		m.adminServer = nil
	}
	if first != nil {
		// Read before the connections are cut: the calls whose request had been read.
		calls, exports, seeds := 0, 0, 0
		if m.Server != nil {
			calls = m.Server.InFlight()
		}
		if m.Emu != nil {
			exports, seeds = m.Emu.Busy()
		}
		for _, srv := range m.servers {
			srv.Close()
		}
		switch {
		case errors.Is(first, context.DeadlineExceeded) && calls == 0 && seeds > 0:
			// A seed over the admin API loads line by line: what it stored stays.
			first = fmt.Errorf("shutdown: an emulator seed still loading after %v was cut off: its lines before the cut are stored, the rest not", timeout)
		case errors.Is(first, context.DeadlineExceeded) && calls == 0 && exports > 0:
			// Only reads: nothing was applied or lost, but a client's file is cut
			// short (its chunked answer does not end, so it can tell).
			what := fmt.Sprintf("%d emulator exports still being sent after %v were cut off (their clients get incomplete files)", exports, timeout)
			if exports == 1 {
				what = fmt.Sprintf("an emulator export still being sent after %v was cut off (its client gets an incomplete file)", timeout)
			}
			m.Logger.Warn("shutdown: " + what + "; no call had started")
			first = nil
		case errors.Is(first, context.DeadlineExceeded) && calls == 0:
			// Only requests still arriving (a client that stopped half way through its
			// body): no call had started, so nothing was applied or lost.
			m.Logger.Warn(fmt.Sprintf("shutdown: requests still arriving after %v were cut off; no call had started", timeout))
			first = nil
		case errors.Is(first, context.DeadlineExceeded):
			first = fmt.Errorf("shutdown: calls still in flight after %v were cut off", timeout)
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
	drained := first == nil // every call ended: none can record a nonce any more
	if err := m.exportOnExit(); err != nil && first == nil {
		first = err
	}
	m.saveNonces(drained) // a failure is a warning (nonces.go)
	if m.Store != nil {
		err := m.Store.Close()
		if err != nil && first == nil {
			first = err
		}
		m.Store = nil
		if err == nil && !isPostgres(m.StoreURL) {
			m.warnWALLeft()
		}
	}
	m.dataLock.release()
	m.dataLock = nil
	m.closeSeed()
	m.removeTempData()
	return first
}
