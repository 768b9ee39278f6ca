package http1

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestStateEndsWithRequest: as with net/http, a request's body read after its handler
// returned gives ErrBodyReadAfterClose (never the next request's bytes), and its
// context is done.
func TestStateEndsWithRequest(t *testing.T) {
	var kept io.ReadCloser
	var keptCtx context.Context
	mux := http.NewServeMux()
	mux.HandleFunc("/keep", func(w http.ResponseWriter, r *http.Request) {
		kept, keptCtx = r.Body, r.Context()
		io.WriteString(w, "kept")
	})
	mux.HandleFunc("/read-kept", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(kept)
		io.WriteString(w, "kept body: "+string(b)+" err: "+errString(err)+" ctx: "+errString(keptCtx.Err()))
	})
	for _, fast := range []bool{false, true} {
		addr, _ := start(t, mux, fast, nil)
		raw := "POST /keep HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc" +
			"POST /read-kept HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n\r\nSECRET"
		got := send(t, addr, raw, 2)
		if len(got) != 2 {
			t.Fatalf("%d answers", len(got))
		}
		body := got[1][strings.Index(got[1], "\r\n\r\n")+4:]
		want := "kept body:  err: " + http.ErrBodyReadAfterClose.Error() + " ctx: " + context.Canceled.Error()
		if body != want {
			t.Errorf("fast %v: %q, want %q (the first request's body read after its handler returned: nothing, and its context done)", fast, body, want)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
