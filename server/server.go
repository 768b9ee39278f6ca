// Package server answers the Gigya socialize REST API over HTTP: the route table, the
// authentication of every call, one handler per method and one envelope writer.
//
// A call goes through the same steps, and the first failure answers:
// find the method (400001), read and decode the parameters (413001, 400001, 400006),
// read the answer format, authenticate (400093, 400002, 403002, 403003, 403004, 403006,
// 403005), check the key's permissions (403007), check the parameters the method does
// not know (ignoredParams, or 403007 with checkParams=true), then run the method.
package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/gigya"
)

// Config is what a Server needs. Store and Nonces are required.
type Config struct {
	Store  socius.Store
	Nonces socius.NonceStore
	// Clock tells the time for every rule; the system clock when nil.
	Clock socius.Clock
	// Skew is how far a signed request's timestamp may be from now (default 120 s).
	Skew time.Duration
	// TrustForwardedProto honours X-Forwarded-Proto: https from a TLS-terminating
	// proxy: the call then counts as secure.
	TrustForwardedProto bool
	// MaxBodyBytes limits a request body (default 1 MiB).
	MaxBodyBytes int64
	// Logger receives one line per call at debug level and unexpected failures at
	// error level; slog.Default() when nil.
	Logger *slog.Logger
	// Observe, when set, is called after every call with what happened (for request
	// logs and metrics). It must not keep the *Call.
	Observe func(*Call)
}

// DefaultMaxBodyBytes is the default request body limit.
const DefaultMaxBodyBytes = 1 << 20

// DefaultSkew is the default timestamp window.
const DefaultSkew = 120 * time.Second

// Server is an http.Handler for the socialize API.
type Server struct {
	cfg     Config
	methods map[string]*method // by lower-case full name
	exact   map[string]*method // by canonical full name
}

// New returns a Server.
func New(cfg Config) *Server {
	if cfg.Clock == nil {
		cfg.Clock = socius.SystemClock{}
	}
	if cfg.Skew <= 0 {
		cfg.Skew = DefaultSkew
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, methods: make(map[string]*method), exact: make(map[string]*method)}
	for _, m := range s.routes() {
		s.methods[strings.ToLower(m.name)] = m
		s.exact[m.name] = m
	}
	return s
}

// Call is what one API call was and how it ended; given to Config.Observe.
type Call struct {
	ID         string
	Time       time.Time
	Method     string // the method as named in the path
	APIKey     string
	UserKey    string
	Credential string // "partner-signature", "partner-secret", "key-signature", "key-secret", ...
	Params     []gigya.Param
	Code       int
	Details    string
	Cause      error // the internal cause of a failure; never sent
	Duration   time.Duration
	// SignedURLs and BaseStrings say what the server signed when a signature did not
	// match (for signature debugging); empty otherwise.
	SignedURLs  []string
	BaseStrings []string
}

// call is the state of one request as it goes through the steps.
type call struct {
	Call
	ctx        context.Context
	start      time.Time
	r          *http.Request
	now        time.Time
	m          *method
	params     gigya.Params
	format     gigya.Format
	callback   string
	httpStatus bool
	checkParam bool
	secure     bool
	scheme     string
	site       *socius.Site
	key        *socius.Key
	ignored    []gigya.IgnoredParam
	body       []byte // the request body, read into reused storage
	out        []byte // the encoded answer
	siteKey    []byte // the site's decoded partner secret, once needed
}

// release clears the call, keeping the storage worth reusing, and recycles it. Calls
// with unusually large buffers are dropped instead, so that one big request does not
// pin memory.
func (c *call) release() {
	params, body, out := c.params, c.body[:0], c.out[:0]
	params.Reset()
	*c = call{params: params, body: body, out: out}
	if cap(body) > 64<<10 || cap(out) > 64<<10 {
		return
	}
	calls.Put(c)
}

// calls recycles the state of finished calls: its parameter list, body buffer and
// answer buffer keep their storage, so that a call in the steady state allocates
// little beyond what it keeps.
var calls = sync.Pool{New: func() any { return new(call) }}

// ServeHTTP answers one call.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := calls.Get().(*call)
	defer c.release()
	c.ctx, c.r, c.start = r.Context(), r, time.Now()
	c.now = s.cfg.Clock.Now()
	c.ID = gigya.NewCallID()
	c.Time = c.now
	c.secure = r.TLS != nil || s.cfg.TrustForwardedProto && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
	c.scheme = "http"
	if c.secure {
		c.scheme = "https"
	}
	data, err := s.serve(w, c)
	s.respond(w, c, data, err)
}

func (s *Server) serve(w http.ResponseWriter, c *call) (gigya.Object, error) {
	c.Method = strings.TrimPrefix(c.r.URL.Path, "/")
	if err := s.readParams(w, c); err != nil {
		return nil, err
	}
	if err := s.readFormat(c); err != nil {
		return nil, err
	}
	c.m = s.method(c.Method)
	if c.m == nil {
		return nil, s.unknownMethod(c.Method)
	}
	c.Method = c.m.name
	if err := s.authenticate(c); err != nil {
		return nil, err
	}
	if c.key != nil && !c.key.Allows(c.m.name) {
		return nil, socius.Errorf(socius.CodePermissionDenied, "Permission denied: userKey %s may not call %s", c.key.UserKey, c.m.name)
	}
	if err := s.checkUnknownParams(c); err != nil {
		return nil, err
	}
	return c.m.handle(s, c)
}

// method finds a method by name, in any letter case.
func (s *Server) method(name string) *method {
	if m := s.exact[name]; m != nil { // how SDKs spell it: no lower-cased copy
		return m
	}
	return s.methods[strings.ToLower(name)]
}

func (s *Server) unknownMethod(name string) error {
	if name == "" {
		return socius.Errorf(socius.CodeInvalidRequest, "Invalid request format: no method in the path; call /socialize.<method>")
	}
	if len(name) > 100 {
		name = name[:100] + "..."
	}
	return socius.Errorf(socius.CodeInvalidRequest, "Unknown method: %s is not a method Socius serves", name)
}

// readParams reads the query string and, for POST, the form body (within the size
// limit), and decodes both into c.params.
func (s *Server) readParams(w http.ResponseWriter, c *call) error {
	r := c.r
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return socius.Errorf(socius.CodeInvalidRequest, "Invalid request format: HTTP method %s is not supported, use GET or POST", clip(r.Method, 16))
	}
	if err := c.params.Decode(r.URL.RawQuery); err != nil {
		return err
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return tooLarge(s.cfg.MaxBodyBytes)
	}
	var err error
	c.body, err = readBody(c.body[:0], http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes), r.ContentLength)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge(s.cfg.MaxBodyBytes)
		}
		return &socius.Error{Code: socius.CodeInvalidRequest, Details: "Invalid request format: the request body could not be read", Err: err}
	}
	if len(c.body) == 0 {
		return nil
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && ct != formType {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != formType {
			return socius.Errorf(socius.CodeInvalidRequest, "Invalid request format: the body must be application/x-www-form-urlencoded, not %q", clip(ct, 60))
		}
	}
	return c.params.Decode(string(c.body))
}

const formType = "application/x-www-form-urlencoded"

// readBody appends all of r to buf. When the length is announced, the buffer grows
// once to hold it (and one byte more, to see the end without another growth).
func readBody(buf []byte, r io.Reader, length int64) ([]byte, error) {
	if length > 0 {
		buf = slices.Grow(buf, int(length)+1)
	}
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, 512)
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func tooLarge(limit int64) error {
	return socius.Errorf(socius.CodeEntityTooLarge, "Request entity too large: the body exceeds %d bytes", limit)
}

// readFormat reads format, callback, httpStatusCodes and checkParams: how to answer.
func (s *Server) readFormat(c *call) error {
	// httpStatusCodes and the format apply to the answer even if they are the
	// reason for failing, so they are read leniently first.
	c.httpStatus, _ = gigya.ParseBool(c.params.Get("httpStatusCodes"))
	f, ok := gigya.ParseFormat(c.params.Get("format"))
	if !ok {
		return socius.Errorf(socius.CodeInvalidValue, "Invalid parameter value: format must be json, jsonp or xml")
	}
	if f == gigya.JSONP {
		cb, ok := c.params.Lookup("callback")
		if !ok || cb == "" {
			return socius.Errorf(socius.CodeMissingParameter, "Missing required parameter: callback (needed with format=jsonp)")
		}
		if !gigya.ValidCallback(cb) {
			return socius.Errorf(socius.CodeInvalidValue, "Invalid parameter value: callback may hold only A-Z a-z 0-9 _ . $ (at most 128)")
		}
		c.callback = cb
	}
	c.format = f
	if _, err := c.params.Bool("httpStatusCodes", false); err != nil {
		return err
	}
	var err error
	c.checkParam, err = c.params.Bool("checkParams", false)
	return err
}

// respond writes the envelope in the call's format.
func (s *Server) respond(w http.ResponseWriter, c *call, data gigya.Object, err error) {
	env := gigya.Envelope{CallID: c.ID, Time: c.now, Ignored: c.ignored, Data: data}
	if err != nil {
		env.Code = socius.ErrorCode(err)
		var e *socius.Error
		if errors.As(err, &e) {
			env.Details = e.Details
			c.Cause = e.Err
		} else {
			env.Details = "General Server error: an unexpected failure, logged with this callId"
			c.Cause = err
		}
		if c.Cause != nil || env.Code >= 500000 {
			s.cfg.Logger.Error("call failed", "callId", c.ID, "method", c.Method, "errorCode", env.Code, "cause", c.Cause)
		}
	}
	if ctx, ok := c.params.Lookup("context"); ok {
		env.Context = echoContext(ctx)
	}
	method := "socialize"
	if c.m != nil {
		method = c.m.name
	}
	var ct string
	c.out, ct = gigya.AppendEncode(c.out[:0], c.format, method, c.callback, env.Object())
	// The values are shared, read-only slices (the keys are already canonical):
	// Header.Set would allocate both for every answer.
	h := w.Header()
	h["Content-Type"] = contentType(ct)
	h["Date"] = dateHeader(c.now)
	h["Cache-Control"] = noStore
	h["X-Content-Type-Options"] = noSniff
	status := http.StatusOK
	if c.httpStatus {
		status = gigya.StatusCode(env.Code)
		if status < 200 || status > 599 {
			status = http.StatusOK
		}
	}
	w.WriteHeader(status)
	w.Write(c.out)

	c.Code, c.Details = env.Code, env.Details
	c.Duration = time.Since(c.start)
	if c.site != nil {
		c.APIKey = c.site.APIKey
	}
	if c.key != nil {
		c.UserKey = c.key.UserKey
	}
	c.Params = c.params.All()
	if s.cfg.Logger.Enabled(c.ctx, slog.LevelDebug) { // else the arguments alone allocate
		s.cfg.Logger.Debug("call", "callId", c.ID, "method", c.Method, "apiKey", c.APIKey, "errorCode", c.Code, "latency", c.Duration)
	}
	if s.cfg.Observe != nil {
		s.cfg.Observe(&c.Call)
	}
}

var (
	jsonType  = []string{gigya.ContentTypeJSON}
	jsonpType = []string{gigya.ContentTypeJSONP}
	xmlType   = []string{gigya.ContentTypeXML}
	noStore   = []string{"no-store"}
	noSniff   = []string{"nosniff"}
)

func contentType(ct string) []string {
	switch ct {
	case gigya.ContentTypeJSON:
		return jsonType
	case gigya.ContentTypeJSONP:
		return jsonpType
	case gigya.ContentTypeXML:
		return xmlType
	}
	return []string{ct}
}

// dateHeader returns the Date header for t, formatted once per second.
func dateHeader(t time.Time) []string {
	sec := t.Unix()
	if d := lastDate.Load(); d != nil && d.sec == sec {
		return d.value
	}
	d := &date{sec: sec, value: []string{t.UTC().Format(http.TimeFormat)}}
	lastDate.Store(d)
	return d.value
}

type date struct {
	sec   int64
	value []string
}

var lastDate atomic.Pointer[date]

// echoContext returns the context to echo: a JSON object or array as JSON, anything
// else as the string that was sent.
func echoContext(s string) any {
	if t := strings.TrimSpace(s); strings.HasPrefix(t, "{") || strings.HasPrefix(t, "[") {
		if v, err := gigya.ParseJSON(t); err == nil {
			return gigya.RawJSON(gigya.AppendJSON(nil, v))
		}
	}
	return s
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
