package dump

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/socius/socius"
)

// FuzzReader reads arbitrary text as a dump. Every bad line is a *LineError in the
// format's words (no encoding/json or strconv message), reading goes on after it, and
// every record read is written by the Writer into a line that reads back as the same
// record and writes the same again.
func FuzzReader(f *testing.F) {
	site := &socius.Site{APIKey: "3_abc", Secret: "c2VjcmV0LWZvci10aGUtZ2lneWEtbGFiLTEyMzQ1Ng==", Name: "shop", CreatedAt: t0}
	key := &socius.Key{UserKey: "AKey1", APIKey: "3_abc", Secret: "dXNlci1zZWNyZXQtZm9yLWxhYg==", Methods: []string{"socialize.getUserInfo"}, CreatedAt: t0}
	user := &socius.User{APIKey: "3_abc", UID: "u1", CreatedAt: t0, UpdatedAt: t0, LoginAt: t0, LoggedIn: true}
	user.Profile[socius.FirstName] = "Dávid \"🎉\" <b>&"
	user.Profile[socius.Age] = "30"
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.WriteSite(site)
	w.WriteKey(key)
	w.WriteUser(user)
	w.WriteUser(&socius.User{APIKey: "3_abc", UID: "u2"})
	w.Flush()
	f.Add(buf.String())
	f.Add("\xef\xbb\xbf" + `{"apiKey":"3_abc","UID":"u1","profile":{"age":"7","email":"a@b.co"}}` + "\r\n\n")
	f.Add(`{"kind":"site","apiKey":"3_abc","createdAt":"2026-11-28T10:00:00.123456+02:00"}`)
	f.Add(`{"apiKey":"3_abc","UID":"u1","createdAt":"0000-01-01T00:00:00+01:00","loginAt":"0001-01-01T00:00:00.0000001Z"}`)
	f.Add(`{"kind":"key","userKey":"A","methods":[]}` + "\n" + `[1]` + "\n" + `{"UID":1}` + "\n{\"a\":1,\"A\":2}")

	f.Fuzz(func(t *testing.T, text string) {
		r := NewReader(strings.NewReader(text))
		for range 1000 {
			rec, err := r.Next()
			if err == io.EOF {
				return
			}
			var le *LineError
			if err != nil {
				if !errors.As(err, &le) {
					t.Fatalf("not a *LineError: %v", err)
				}
				for _, raw := range []string{"json:", "strconv.", "parsing time", "invalid character"} {
					if strings.Contains(err.Error(), raw) {
						t.Fatalf("a Go message reaches the user: %v", err)
					}
				}
				continue
			}
			first := writeRecord(t, rec)
			again, err := NewReader(strings.NewReader(first)).Next()
			if err != nil {
				t.Fatalf("%q, as written, does not read back: %v", first, err)
			}
			again.Line = rec.Line
			if !reflect.DeepEqual(again, rec) {
				t.Fatalf("%q reads back as another record:\n%s\nwas\n%s", first, describe(again), describe(rec))
			}
			if second := writeRecord(t, again); second != first {
				t.Fatalf("written, read and written again:\n%s\nwas\n%s", second, first)
			}
		}
	})
}

func describe(rec *Record) string {
	return fmt.Sprintf("%+v %+v %+v", rec.Site, rec.Key, rec.User)
}

func writeRecord(t *testing.T, rec *Record) string {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	var err error
	switch {
	case rec.Site != nil:
		err = w.WriteSite(rec.Site)
	case rec.Key != nil:
		err = w.WriteKey(rec.Key)
	default:
		err = w.WriteUser(rec.User)
	}
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		t.Fatalf("a record read (%+v) does not write: %v", rec, err)
	}
	return buf.String()
}
