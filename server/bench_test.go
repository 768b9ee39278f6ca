package server_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/gigya"
	"github.com/socius/socius/nonce"
	"github.com/socius/socius/server"
	"github.com/socius/socius/sqlite"
)

const (
	benchAPIKey = "3_LabApiKey_AbC-123"
	benchSecret = "c2VjcmV0LWZvci10aGUtZ2lneWEtbGFiLTEyMzQ1Ng=="
	benchHost   = "127.0.0.1:8080"
	benchUsers  = 1000
)

// newBenchServer returns a Server on a real SQLite store in a temp folder, with the lab
// site and benchUsers users that have a full profile.
func newBenchServer(b *testing.B) *server.Server {
	b.Helper()
	return server.New(server.Config{Store: newBenchStore(b), Nonces: nonce.New(0)})
}

// newBenchStore returns the store of newBenchServer.
func newBenchStore(b *testing.B) socius.Store {
	b.Helper()
	st, err := sqlite.Open(filepath.Join(b.TempDir(), "socius.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	ctx := b.Context()
	now := time.Now()
	if err := st.CreateSite(ctx, &socius.Site{APIKey: benchAPIKey, Secret: benchSecret, CreatedAt: now}); err != nil {
		b.Fatal(err)
	}
	for i := range benchUsers {
		id := strconv.Itoa(i)
		prof := socius.Profile{"nick" + id, "https://example.com/" + id + ".jpg", "https://example.com/" + id + "-t.jpg",
			"Ada", "Lovelace", "f", "36", "u" + id + "@example.com"}
		if _, err := st.Login(ctx, benchAPIKey, "u"+id, socius.PatchOf(&prof), now); err != nil {
			b.Fatal(err)
		}
	}
	return st
}

// signedBodies returns n signed form bodies of method, as an SDK sends them, each with
// its own nonce; extra adds the method's parameters for request i.
func signedBodies(b *testing.B, n int, method string, extra func(i int) []gigya.Param) []string {
	b.Helper()
	key, err := socius.DecodeSecret(benchSecret)
	if err != nil {
		b.Fatal(err)
	}
	norm := gigya.NormalizedURL("http", benchHost, "/"+method)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	out := make([]string, n)
	for i := range out {
		params := []gigya.Param{
			{Name: "apiKey", Value: benchAPIKey},
			{Name: "format", Value: "json"},
			{Name: "httpStatusCodes", Value: "false"},
			{Name: "nonce", Value: fmt.Sprintf("%d_%d", time.Now().UnixNano(), i)},
			{Name: "sdk", Value: "java_3.2.4"},
			{Name: "timestamp", Value: ts},
		}
		params = append(params, extra(i)...)
		params = append(params, gigya.Param{Name: "sig", Value: gigya.Sign(key, "POST", norm, params)})
		var sb strings.Builder
		for j, p := range params {
			if j > 0 {
				sb.WriteByte('&')
			}
			sb.WriteString(p.Name + "=" + gigya.Escape(p.Value))
		}
		out[i] = sb.String()
	}
	return out
}

// benchmarkCalls serves every body once, from 16 goroutines per CPU (as an HTTP server
// under load has many calls in flight), each through httptest, and checks the answer.
func benchmarkCalls(b *testing.B, s *server.Server, method string, bodies []string) {
	benchmarkRequests(b, s, method, bodies, nil)
}

// benchmarkRequests is benchmarkCalls with each request given the header fields of
// header (nil: none).
func benchmarkRequests(b *testing.B, s *server.Server, method string, bodies []string, header http.Header) {
	var next atomic.Int64
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, measured := cpuTime()
	defer func() {
		// The machine is shared: the process's CPU time per call says what a call
		// costs better than the elapsed time does.
		if cpu1, ok := cpuTime(); measured && ok {
			b.ReportMetric(float64(cpu1-cpu0)/float64(b.N)/1e3, "cpu-µs/op")
		}
	}()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body := bodies[next.Add(1)-1]
			r := httptest.NewRequest(http.MethodPost, "http://"+benchHost+"/"+method, strings.NewReader(body))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for k, v := range header {
				r.Header[k] = v
			}
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			if !strings.Contains(w.Body.String(), `"errorCode":0,`) {
				b.Errorf("%s: %s", method, w.Body)
				return
			}
		}
	})
}

// BenchmarkServeSetUserInfo is the whole handler for a signed setUserInfo of a random
// user: decoding, authentication, the signature, the nonce, the durable write (group
// commit) and the answer.
func BenchmarkServeSetUserInfo(b *testing.B) {
	s := newBenchServer(b)
	bodies := signedBodies(b, b.N, "socialize.setUserInfo", func(i int) []gigya.Param {
		return []gigya.Param{
			{Name: "UID", Value: "u" + strconv.Itoa(i%benchUsers)},
			{Name: "userInfo", Value: `{"firstName":"David","nickname":"n` + strconv.Itoa(i) + `","age":30}`},
		}
	})
	benchmarkCalls(b, s, "socialize.setUserInfo", bodies)
}

// BenchmarkServeGetUserInfo is the whole handler for a signed getUserInfo of a random
// user with a full profile.
func BenchmarkServeGetUserInfo(b *testing.B) {
	s := newBenchServer(b)
	bodies := signedBodies(b, b.N, "socialize.getUserInfo", func(i int) []gigya.Param {
		return []gigya.Param{{Name: "UID", Value: "u" + strconv.Itoa(i*7919%benchUsers)}}
	})
	benchmarkCalls(b, s, "socialize.getUserInfo", bodies)
}

// BenchmarkServeGetUserInfoBehindProxy is BenchmarkServeGetUserInfo from a proxy that
// sends X-Forwarded-For, with the limit on failed authentications and the call log on
// (into io.Discard): "untrusted" without TrustedProxies (the header unread), "trusted"
// with the proxy trusted, when the log line reads the header for the client's address.
func BenchmarkServeGetUserInfoBehindProxy(b *testing.B) {
	proxy, err := server.ParseTrustedProxies("192.0.2.0/24") // httptest's RemoteAddr is 192.0.2.1
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		proxies server.TrustedProxies
	}{{"untrusted", nil}, {"trusted", proxy}} {
		b.Run(c.name, func(b *testing.B) {
			s := server.New(server.Config{Store: newBenchStore(b), Nonces: nonce.New(0), TrustedProxies: c.proxies,
				AuthFailureLimit: 10, Observe: server.LogCalls(slog.New(slog.NewTextHandler(io.Discard, nil)))})
			bodies := signedBodies(b, b.N, "socialize.getUserInfo", func(i int) []gigya.Param {
				return []gigya.Param{{Name: "UID", Value: "u" + strconv.Itoa(i*7919%benchUsers)}}
			})
			benchmarkRequests(b, s, "socialize.getUserInfo", bodies, http.Header{"X-Forwarded-For": {"198.51.100.1, 192.0.2.5"}})
		})
	}
}
