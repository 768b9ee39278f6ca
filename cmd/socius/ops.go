package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/gigya"
	"github.com/socius/socius/server"
)

// newLogger returns the process logger: text or JSON lines at the given level. Any
// attribute named like a credential is masked, whoever logs it: the call log never
// logs one, and this is the net under it.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	lv, err := parseLogLevel(level)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: lv, ReplaceAttr: maskCredentials}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: text or json", format)
}

// parseLogLevel reads --log-level: debug, info, warn or error, in any letter case.
// slog's own reading (slog.Level.UnmarshalText) takes an offset as well ("INFO+2",
// "debug-4"), a level that the documentation does not name, and that a typo can make.
func parseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("--log-level %q: debug, info, warn or error", s)
}

// credentialAttrs are attribute names whose values are never logged, beside those
// that server.IsCredential names (any name holding secret, token or password).
var credentialAttrs = []string{"signature", "authorization"}

// maskCredentials is a slog ReplaceAttr: the value of a credential-named attribute
// becomes "***", as the server masks credential parameters.
func maskCredentials(_ []string, a slog.Attr) slog.Attr {
	if server.IsCredential(a.Key) {
		return slog.String(a.Key, "***")
	}
	for _, name := range credentialAttrs {
		if strings.EqualFold(a.Key, name) {
			return slog.String(a.Key, "***")
		}
	}
	return a
}

// serverLog returns the ErrorLog of every listener's server: what net/http and the
// fast path say of a connection outside any call. Most of it is a client's doing (a
// failed TLS handshake, a port scanner's connection) and goes to debug level. Two
// kinds go to error level, where an operator sees them: a panic outside a call (a bug
// in the fast path, the CONNECT tunnel or the admin handler; a call's own panic is
// logged as "call panicked") and an accept that fails (out of file descriptors: no
// new client gets in while it lasts). Before 2026-11-30 both were at debug level, and
// so never in a production log.
func serverLog(l *slog.Logger) *log.Logger {
	return log.New(serverLogWriter{l}, "", 0)
}

type serverLogWriter struct{ l *slog.Logger }

func (w serverLogWriter) Write(p []byte) (int, error) {
	msg, stack, _ := strings.Cut(strings.TrimSuffix(string(p), "\n"), "\n")
	level := slog.LevelDebug
	if strings.Contains(msg, ": panic serving ") || strings.HasPrefix(msg, "http: Accept error: ") {
		level = slog.LevelError
	}
	ctx := context.Background()
	if !w.l.Enabled(ctx, level) {
		return len(p), nil
	}
	if stack != "" {
		w.l.Log(ctx, level, msg, "stack", stack)
	} else {
		w.l.Log(ctx, level, msg)
	}
	return len(p), nil
}

// adminHandler serves the admin listener: /metrics (Prometheus), /healthz (the process
// answers, from the moment the listener is bound) and /readyz (Socius has started and
// is not shutting down, and the store answers a read and, when it can tell, still
// keeps what it is given). The store read is m.readyStore, without decorators, so that
// probes do not count as store calls.
func (m *Main) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Metrics)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if m.closing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "not ready: shutting down\n")
			return
		}
		if !m.serving.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "not ready: starting\n")
			return
		}
		raw := m.readyStore
		if h, ok := raw.(interface{ Healthy() error }); ok {
			if err := h.Healthy(); err != nil {
				m.Logger.Error("readiness check failed", "err", err)
				w.WriteHeader(http.StatusServiceUnavailable)
				why := err.Error()
				if se := (*socius.Error)(nil); errors.As(err, &se) && se.Err != nil {
					why = se.Err.Error() // the cause, not "Database error"
				}
				io.WriteString(w, "not ready: "+why+"\n")
				return
			}
		}
		if err := storeReady(r.Context(), raw); err != nil {
			m.Logger.Warn("readiness check failed", "err", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "not ready: the store failed a read (the log says why)\n")
			return
		}
		io.WriteString(w, "ready\n")
	})
	return httpTargetsOnly(mux)
}

// httpTargetsOnly answers a plain 400 to a request whose target is an absolute URL of
// a scheme other than http or https (gigya.OtherScheme), as the API answers 400001 and
// the emulator 400: net/http passes any scheme on, and ServeMux would serve its path.
// For the admin listener and the profiler.
func httpTargetsOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refusal, other := gigya.OtherScheme(r.URL.Scheme); other {
			http.Error(w, refusal, http.StatusBadRequest)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// readyProbe is the apiKey storeReady asks for: no site has it (an apiKey has no
// spaces), and every store can hold it as text (PostgreSQL refuses a NUL byte).
const readyProbe = "socius readiness probe"

// storeReady reads a site that cannot exist: "not found" is an answer, so the store is
// reachable; anything else (or no answer within 2 s) is not.
func storeReady(ctx context.Context, st socius.Store) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := st.Site(ctx, readyProbe)
	if err == nil || errors.Is(err, socius.ErrNotFound) {
		return nil
	}
	return err
}
