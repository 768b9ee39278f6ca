package emulator

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/internal/syncbuf"
)

// countedViews is a store whose views are counted while open, and wait pause before
// each page of users they read.
type countedViews struct {
	socius.Store
	pause time.Duration
	open  atomic.Int32
}

func (s *countedViews) Snapshot(ctx context.Context) (socius.View, error) {
	v, err := s.Store.(socius.Snapshotter).Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	s.open.Add(1)
	return &countedView{View: v, s: s}, nil
}

type countedView struct {
	socius.View
	s    *countedViews
	once sync.Once
}

func (v *countedView) Users(ctx context.Context, apiKey, after string, limit int) ([]*socius.User, error) {
	time.Sleep(v.s.pause)
	return v.View.Users(ctx, apiKey, after, limit)
}

func (v *countedView) Close() error {
	v.once.Do(func() { v.s.open.Add(-1) })
	return v.View.Close()
}

// smallBuffers is a listener whose connections send through a small socket buffer, so
// that a client that reads nothing stalls the server's writes after a few kilobytes.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(4096)
	}
	return c, err
}

// serveExport serves e on a port of its own with the listeners' deadlines of socius
// serve, here of 2 s, the least it takes in emulator mode.
func serveExport(t *testing.T, e *Emulator) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: e.Wrap(http.NotFoundHandler()), ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second}
	go srv.Serve(smallBuffers{ln})
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// pagedExportStore is a store of the seed and n users logged in, exported 5 users a
// page (exportPage, restored when the test ends): an export of many reads.
func pagedExportStore(t *testing.T, n int) socius.Store {
	t.Helper()
	old := exportPage
	t.Cleanup(func() { exportPage = old })
	exportPage = 5
	st := openStore(t)
	if _, err := Seed(t.Context(), st, strings.NewReader(seedFile), time.Now()); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := st.Login(t.Context(), siteKey, fmt.Sprintf("u-%03d", i), nil, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// TestExportOutlastsDeadlines: an export over the admin API that takes longer than the
// listeners' read and write timeouts, its client reading all the while, is whole. The
// read deadline, once passed, cancelled the request's context, and the write deadline
// cut the answer: every export longer than 30 s (a large store, a slow network) was
// cut off half way, logged at debug level as abandoned by its client.
func TestExportOutlastsDeadlines(t *testing.T) {
	ctx := t.Context()
	st := pagedExportStore(t, 40)
	var want bytes.Buffer
	if _, err := Export(ctx, st, &want); err != nil {
		t.Fatal(err)
	}
	// Nine pages or more, each read 400 ms after the last: past both 2 s deadlines.
	slow := &countedViews{Store: st, pause: 400 * time.Millisecond}
	e := New(Config{Store: slow, Clock: &socius.OffsetClock{}, LogSize: 10, WriteTimeout: 2 * time.Second})
	base := serveExport(t, e)
	resp, err := http.Get(base + "/_emulator/api/export")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET export: HTTP %d, %d bytes, %v; want 200 and the whole export", resp.StatusCode, len(body), err)
	}
	if string(body) != want.String() {
		t.Fatalf("the export is not whole: %d bytes, want %d", len(body), want.Len())
	}
	if n := slow.open.Load(); n != 0 {
		t.Errorf("%d views left open after the export", n)
	}
}

// TestExportStalledClient: a client that asks for an export and reads nothing is cut
// off once the server's writes have waited the listeners' write timeout for it (2 s
// here), and the export's view is closed then, not held for as long as the client
// keeps its connection open.
func TestExportStalledClient(t *testing.T) {
	ctx := t.Context()
	st := openStore(t)
	if _, err := Seed(ctx, st, strings.NewReader(seedFile), time.Now()); err != nil {
		t.Fatal(err)
	}
	// Far more than the socket buffers hold: about 1.2 MB.
	var seed strings.Builder
	for i := range 600 {
		fmt.Fprintf(&seed, `{"kind":"user","apiKey":%q,"UID":"user-%05d","profile":{"nickname":"%s","firstName":"%[3]s"}}`+"\n", siteKey, i, strings.Repeat("n", 1000))
	}
	if _, err := Seed(ctx, st, strings.NewReader(seed.String()), time.Now()); err != nil {
		t.Fatal(err)
	}
	var logged syncbuf.Buffer
	views := &countedViews{Store: st}
	e := New(Config{Store: views, Clock: &socius.OffsetClock{}, LogSize: 10, WriteTimeout: 2 * time.Second,
		Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	base := serveExport(t, e)

	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /_emulator/api/export HTTP/1.1\r\nHost: "+strings.TrimPrefix(base, "http://")+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// The view opens, and is closed while the client still reads nothing.
	for deadline := time.Now().Add(20 * time.Second); views.open.Load() != 0 || !strings.Contains(logged.String(), "export cut off"); {
		if time.Now().After(deadline) {
			t.Fatalf("20 s after a client asked for an export and read nothing: %d views open; log:\n%s", views.open.Load(), logged.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(logged.String(), "its client took nothing for 2s") {
		t.Errorf("the log does not say why the export was cut off:\n%s", logged.String())
	}
	// What the client reads now is the start of the export, cut off.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, _ := io.ReadAll(conn)
	if !bytes.HasPrefix(got, []byte("HTTP/1.1 200 OK")) || bytes.Contains(got, []byte("user-00599")) {
		t.Errorf("the stalled client read %d bytes, starting %q; want the start of the export only", len(got), got[:min(len(got), 40)])
	}
}

// TestExportClientGone: a client that hangs up half way through an export ends it, its
// view closed, though the export has no read deadline any more: the server's read of
// the connection finds it closed and cancels the export's context.
func TestExportClientGone(t *testing.T) {
	st := pagedExportStore(t, 100)
	// Twenty pages or more, 200 ms apart: the client is gone long before the last.
	views := &countedViews{Store: st, pause: 200 * time.Millisecond}
	var logged syncbuf.Buffer
	e := New(Config{Store: views, Clock: &socius.OffsetClock{}, LogSize: 10, WriteTimeout: 2 * time.Second,
		Logger: slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	base := serveExport(t, e)
	resp, err := http.Get(base + "/_emulator/api/export")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := resp.Body.Read(make([]byte, 10)); err != nil {
		t.Fatalf("the export's first bytes: %v", err)
	}
	if views.open.Load() != 1 {
		t.Fatalf("%d views open while the export runs; want 1", views.open.Load())
	}
	resp.Body.Close() // closes the connection: the body was not read to its end
	for deadline := time.Now().Add(20 * time.Second); views.open.Load() != 0 || !strings.Contains(logged.String(), "abandoned by the client"); {
		if time.Now().After(deadline) {
			t.Fatalf("20 s after its client hung up: %d views open; log:\n%s", views.open.Load(), logged.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
