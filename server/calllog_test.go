package server

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/socius/socius/gigya"
)

func TestRedact(t *testing.T) {
	secret := "c2Vj+cmV0/LTE=" // '+', '/' and '=' change under percent-encoding
	once := gigya.Escape(secret)
	twice := gigya.Escape(once)
	for _, s := range []string{
		"plain " + secret + " text",
		"apiKey=3_a&secret=" + once + "&UID=u1",
		"POST&http%3A%2F%2Fh%2Fsocialize.x&apiKey%3D3_a%26secret%3D" + twice,
	} {
		got := redact(s, []string{secret})
		if strings.Contains(got, secret) || strings.Contains(got, once) || strings.Contains(got, twice) || !strings.Contains(got, Redacted) {
			t.Errorf("redact(%q) = %q", s, got)
		}
	}
	if got := redact("nothing to hide", nil); got != "nothing to hide" {
		t.Errorf("redact without secrets = %q", got)
	}
}

func TestLogCalls(t *testing.T) {
	var b bytes.Buffer
	log := LogCalls(slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug})))
	c := &Call{
		ID: "0123456789abcdef0123456789abcdef", Method: "socialize.getUserInfo", Known: true, APIKey: "3_a",
		Credential: "partner-signature", Code: 403003, Duration: 1500 * time.Microsecond, RemoteAddr: "127.0.0.1:5",
		Details: "Invalid request signature: it does not match",
		Params: []gigya.Param{{Name: "apiKey", Value: "3_a"}, {Name: "Secret", Value: "hunter2hunter2"}, {Name: "sig", Value: "c2lnbmF0dXJl"},
			{Name: "UID", Value: "private-uid"}},
		SignedURLs:  []string{"http://h/socialize.getUserInfo"},
		BaseStrings: []string{"POST&http%3A%2F%2Fh%2Fsocialize.getUserInfo&Secret%3Dhunter2hunter2%26UID%3Dprivate-uid"},
	}
	log(c)
	out := b.String()
	for _, want := range []string{"msg=call callId=0123456789abcdef0123456789abcdef method=socialize.getUserInfo apiKey=3_a credential=partner-signature errorCode=403003 latencyMs=1.5 remote=127.0.0.1:5",
		`errorDetails="Invalid request signature: it does not match"`, "msg=\"signature mismatch\"", "Secret%3D" + Redacted} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{"hunter2hunter2", "c2lnbmF0dXJl"} {
		if strings.Contains(out, secret) {
			t.Errorf("log holds %q:\n%s", secret, out)
		}
	}
	// A success adds no errorDetails; below info level nothing is written.
	b.Reset()
	log(&Call{ID: "x", Method: "socialize.logout", Known: true})
	if strings.Contains(b.String(), "errorDetails") {
		t.Errorf("success line: %s", b.String())
	}
	b.Reset()
	LogCalls(slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelWarn})))(c)
	if b.Len() != 0 {
		t.Errorf("at warn level: %s", b.String())
	}
}
