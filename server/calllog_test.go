package server

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/socius/socius/gigya"
)

func TestLogCalls(t *testing.T) {
	var b bytes.Buffer
	log := LogCalls(slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug})))
	c := &Call{
		ID: "0123456789abcdef0123456789abcdef", Method: "socialize.getUserInfo", Known: true, APIKey: "3_a",
		Credential: "partner-signature", Code: 403003, Duration: 1500 * time.Microsecond, RemoteAddr: "127.0.0.1:5",
		Details:     "Invalid request signature: it does not match",
		Params:      []gigya.Param{{Name: "apiKey", Value: "3_a"}, {Name: "UID", Value: "private-uid"}, {Name: "userInfo", Value: `{"email":"a@b.c"}`}},
		SignedURLs:  []string{"http://h/socialize.getUserInfo"},
		BaseStrings: []string{"POST&http%3A%2F%2Fh%2Fsocialize.getUserInfo&UID%3Dx"},
	}
	log(c)
	out := b.String()
	for _, want := range []string{"msg=call callId=0123456789abcdef0123456789abcdef method=socialize.getUserInfo apiKey=3_a credential=partner-signature errorCode=403003 latencyMs=1.5 remote=127.0.0.1:5",
		`errorDetails="Invalid request signature: it does not match"`, `msg="signature mismatch"`, "UID%3Dx"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	// Parameter values (personal data as much as credentials) are not logged.
	for _, value := range []string{"private-uid", "a@b.c"} {
		if strings.Contains(out, value) {
			t.Errorf("log holds the parameter value %q:\n%s", value, out)
		}
	}
	// A success adds no errorDetails; below info level nothing is written.
	b.Reset()
	log(&Call{ID: "x", Method: "socialize.logout", Known: true})
	if !strings.Contains(b.String(), "msg=call") || strings.Contains(b.String(), "errorDetails") {
		t.Errorf("success line: %s", b.String())
	}
	// An unknown method's name and errorDetails are cut: both may quote the request.
	b.Reset()
	log(&Call{ID: "y", Method: strings.Repeat("m", 300), Code: 400001, Details: strings.Repeat("d", 3000)})
	if out := b.String(); !strings.Contains(out, "method="+strings.Repeat("m", 100)+"...") || strings.Contains(out, strings.Repeat("m", 101)) ||
		!strings.Contains(out, strings.Repeat("d", maxLoggedDetails)+"...") || strings.Contains(out, strings.Repeat("d", maxLoggedDetails+1)) {
		t.Errorf("a long method and errorDetails: a line of %d bytes: %.300s", len(out), out)
	}
	b.Reset()
	LogCalls(slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelWarn})))(c)
	if b.Len() != 0 {
		t.Errorf("at warn level: %s", b.String())
	}
}
