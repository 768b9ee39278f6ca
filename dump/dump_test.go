package dump

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/socius/socius"
)

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 123_000_000, time.UTC)

func TestRoundTrip(t *testing.T) {
	site := &socius.Site{APIKey: "3_abc", Secret: "c2VjcmV0LWZvci10aGUtZ2lneWEtbGFiLTEyMzQ1Ng==", Name: "shop", CreatedAt: t0}
	key := &socius.Key{UserKey: "AKey1", APIKey: "3_abc", Secret: "dXNlci1zZWNyZXQtZm9yLWxhYg==", Methods: []string{"socialize.getUserInfo"}, CreatedAt: t0}
	user := &socius.User{APIKey: "3_abc", UID: "u1", CreatedAt: t0, UpdatedAt: t0.Add(time.Second), LoginAt: t0.Add(time.Minute), LoggedIn: true}
	user.Profile[socius.FirstName] = "Dávid \"🎉\" <b>&"
	user.Profile[socius.Age] = "30"
	user.Profile[socius.Nickname] = " " // a value the server keeps: only "" clears
	user.Profile[socius.LastName] = "\t"
	bare := &socius.User{APIKey: "3_abc", UID: "u2"}

	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, err := range []error{w.WriteSite(site), w.WriteKey(key), w.WriteUser(user), w.WriteUser(bare), w.Flush()} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(buf.String(), `"age":30`) || strings.Contains(buf.String(), `\u003c`) {
		t.Errorf("unexpected encoding:\n%s", buf.String())
	}
	r := NewReader(&buf)
	var got []*Record
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, rec)
	}
	if len(got) != 4 || got[0].Kind() != KindSite || got[1].Kind() != KindKey || got[2].Kind() != KindUser {
		t.Fatalf("records: %+v", got)
	}
	if *got[0].Site != *site {
		t.Errorf("site %+v", got[0].Site)
	}
	if got[1].Key.UserKey != key.UserKey || got[1].Key.Methods[0] != "socialize.getUserInfo" || !got[1].Key.CreatedAt.Equal(t0) {
		t.Errorf("key %+v", got[1].Key)
	}
	if u := got[2].User; u.Profile != user.Profile || !u.UpdatedAt.Equal(user.UpdatedAt) || !u.LoginAt.Equal(user.LoginAt) || !u.LoggedIn || got[2].Line != 3 {
		t.Errorf("user %+v", u)
	}
	if u := got[3].User; !u.CreatedAt.IsZero() || u.LoggedIn || !u.Profile.Empty() {
		t.Errorf("bare user %+v", u)
	}
}

func TestBadLinesAreReportedAndSkipped(t *testing.T) {
	in := strings.Join([]string{
		`{"apiKey":"3_abc","UID":"ok1"}`,
		`not json`,
		`{"apiKey":"3_abc","UID":"x","profile":{"gender":"q"}}`,
		`{"apiKey":"3_abc","UID":"x","profile":{"shoeSize":44}}`,
		`{"apiKey":"3_abc","UID":"x","extra":1}`,
		`{"kind":"planet"}`,
		`{"kind":"site","apiKey":"3_s","secret":"c2hvcnQ="}`,
		`{"apiKey":"3_abc","UID":"x","createdAt":"yesterday"}`,
		`{"apiKey":"3_abc","UID":"` + strings.Repeat("u", 253) + `"}`,
		`{"apiKey":"3_abc","UID":"x","profile":{"firstName":"A","FIRSTNAME":"B"}}`,
		`{"kind":"key","userKey":"AKey2","apiKey":"3_abc","secret":"dXNlci1zZWNyZXQtZm9yLWxhYg==","publicKey":"not a key"}`,
		``,
		// What encoding/json would let by, and a store would not hold alike: a key
		// given twice (the last would win), invalid UTF-8, a name PostgreSQL cannot
		// hold, a key for every method by an empty list.
		`{"apiKey":"3_abc","UID":"x","profile":{"firstName":"A","firstName":"B"}}`,
		`{"apiKey":"3_abc","UID":"x","UID":"y"}`,
		`{"apiKey":"3_abc","UID":"x","uid":"y"}`,
		"{\"apiKey\":\"3_abc\",\"UID\":\"x\",\"profile\":{\"nickname\":\"\xff\xfe\"}}",
		`{"kind":"site","apiKey":"3_s","secret":"c2VjcmV0LWZvci10aGUtZ2lneWEtbGFiLTEyMzQ1Ng==","name":"a\u0000b"}`,
		`{"kind":"key","userKey":"AKey3","apiKey":"3_abc","secret":"dXNlci1zZWNyZXQtZm9yLWxhYg==","methods":[]}`,
		// A record without its key, or with one a store would refuse; two values on
		// one line; a time that is not one; a value of another JSON type.
		`{"UID":"x"}`,
		`{"kind":"site","apiKey":"3 s","secret":"c2VjcmV0LWZvci10aGUtZ2lneWEtbGFiLTEyMzQ1Ng=="}`,
		`{"kind":"key","apiKey":"3_abc","secret":"dXNlci1zZWNyZXQtZm9yLWxhYg=="}`,
		`{"kind":"key","userKey":"AKey4","secret":"dXNlci1zZWNyZXQtZm9yLWxhYg=="}`,
		`{"kind":"key","userKey":"AKey5","apiKey":"3_abc","secret":"c2hvcnQ="}`,
		`{"apiKey":"3_abc","UID":"x"}{"apiKey":"3_abc","UID":"y"}`,
		`{"apiKey":"3_abc","UID":"x","updatedAt":"yesterday"}`,
		`{"apiKey":"3_abc","UID":"x","loginAt":"2026-11-28 10:00"}`,
		`{"apiKey":"3_abc","UID":"x","profile":{"nickname":true}}`,
		`{"apiKey":"3_abc","UID":"x","profile":{"nickname":{"a":1}}}`,
		`{"apiKey":"3_abc","UID":"x"}}`,
		`{"apiKey":"3_abc","UID":"x"} ]`,
		`{"apiKey":"3_abc","UID":"ok2","profile":{"age":"41"}}` + " \r",
	}, "\n")
	var okUIDs []string
	var badLines []int
	for _, o := range readAll(t, in) {
		if o.bad != nil {
			badLines = append(badLines, o.bad.Line)
		} else {
			okUIDs = append(okUIDs, o.rec.User.UID)
		}
	}
	if strings.Join(okUIDs, ",") != "ok1,ok2" {
		t.Errorf("good records %v", okUIDs)
	}
	want := []int{2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30}
	if len(badLines) != len(want) {
		t.Fatalf("bad lines %v, want %v", badLines, want)
	}
	for i := range want {
		if badLines[i] != want[i] {
			t.Errorf("bad lines %v, want %v", badLines, want)
		}
	}
}

// TestLineOfMaxLine: a line of exactly MaxLine bytes is read; one byte more is an error.
func TestLineOfMaxLine(t *testing.T) {
	line := func(n int) string {
		head := `{"apiKey":"3_abc","UID":"u1","name":"`
		return head + strings.Repeat("x", n-len(head)-2) + `"}`
	}
	for _, tt := range []struct {
		n  int
		ok bool
	}{{MaxLine, true}, {MaxLine + 1, false}} {
		l := line(tt.n)
		if len(l) != tt.n {
			t.Fatalf("line of %d bytes", len(l))
		}
		for _, end := range []string{"\n", "\r\n", ""} {
			_, err := NewReader(strings.NewReader(l + end)).Next()
			if tt.ok && err != nil && strings.Contains(err.Error(), "longer than") || !tt.ok && (err == nil || !strings.Contains(err.Error(), "longer than")) {
				t.Errorf("a line of %d bytes ending %q: %v", tt.n, end, err)
			}
		}
	}
}

// TestLongLineSkipped: a line longer than MaxLine is a bad line like any other, and the
// records after it are read; the last line may lack its newline.
func TestLongLineSkipped(t *testing.T) {
	long := `{"apiKey":"3_abc","UID":"big","name":"` + strings.Repeat("x", 3*MaxLine) + `"}`
	good := func(uid string) string { return `{"apiKey":"3_abc","UID":"` + uid + `"}` }
	for _, in := range []string{
		good("a") + "\n" + long + "\n" + good("b") + "\n" + long,
		long + "\n" + good("a") + "\n" + good("b"),
		good("a") + "\r\n" + long + "\r\n" + good("b") + "\r\n",
	} {
		var got []string
		for _, o := range readAll(t, in) {
			if o.bad != nil {
				if !strings.Contains(o.bad.Error(), "longer than 1048576 bytes") {
					t.Errorf("line error: %v", o.bad)
				}
				got = append(got, fmt.Sprintf("bad %d", o.bad.Line))
			} else {
				got = append(got, fmt.Sprintf("%s %d", o.rec.User.UID, o.rec.Line))
			}
		}
		want := "a 1,bad 2,b 3"
		if strings.HasPrefix(in, long) {
			want = "bad 1,a 2,b 3"
		} else if strings.HasSuffix(in, long) {
			want += ",bad 4"
		}
		if strings.Join(got, ",") != want {
			t.Errorf("records %q, want %q", strings.Join(got, ","), want)
		}
	}
}

// read is what a Reader's Next gave: a record, or a bad line.
type read struct {
	rec *Record
	bad *LineError
}

// readAll reads in to its end, in order; any other error fails the test.
func readAll(t *testing.T, in string) []read {
	t.Helper()
	r := NewReader(strings.NewReader(in))
	var out []read
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return out
		}
		var le *LineError
		switch {
		case errors.As(err, &le):
			out = append(out, read{bad: le})
		case err != nil:
			t.Fatalf("Next: %v", err)
		default:
			out = append(out, read{rec: rec})
		}
	}
}

func TestDuplicateKey(t *testing.T) {
	long := `"methods":[` + strings.Repeat(`"m",`, 10001) + `"m"]`
	for text, want := range map[string]string{
		`{"a":1,"b":2}`:                           "",
		`{"a":1,"A":2}`:                           "A",
		`{"secret":"x","ſecret":"y"}`:             "ſecret", // encoding/json takes ſ for s
		"{\"k\":1,\"\u212a\":2}":                  "\u212a", // and the Kelvin sign for k
		`{"a":{"x":1,"x":2}}`:                     "",       // not the nested one asked for
		`{"profile":{"x":1,"X":2}}`:               "X",
		`{"Profile":{"x":1},"b":{"x":1}}`:         "",
		`{"a":[{"x":1,"x":2}],"b":1,"b":2}`:       "b",
		`{` + long + `,"secret":1,"secret":2}`:    "secret", // however many values before
		`{"a":1,"a":`:                             "a",
		`not JSON`:                                "",
		`{"a":1}{"a":2}`:                          "",
		`{"profile":[{"x":1,"x":2}],"x":1,"y":1}`: "",
	} {
		if got := DuplicateKey([]byte(text), "profile"); got != want {
			t.Errorf("DuplicateKey(%.60s) = %q, want %q", text, got, want)
		}
	}
}

// TestTimesWrittenInUTC: times are written in UTC, with milliseconds, whatever the
// location of the time given.
func TestTimesWrittenInUTC(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.WriteUser(&socius.User{APIKey: "3_abc", UID: "u1", CreatedAt: t0.In(paris)}); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	if !strings.Contains(buf.String(), `"createdAt":"2026-11-28T10:00:00.123Z"`) {
		t.Errorf("a time in %v written as %s", paris, buf.String())
	}
}

// TestDuplicateKeyDeepNesting: a line nested deeper than encoding/json decodes is
// left to the decoder, which refuses it, rather than read to its end: a line of a
// million '[' cost DuplicateKey about 200 MB of allocations and a second or two.
func TestDuplicateKeyDeepNesting(t *testing.T) {
	for _, text := range []string{strings.Repeat("[", MaxLine), `{"profile":` + strings.Repeat(`{"a":`, MaxLine/5)} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		k := DuplicateKey([]byte(text), "profile")
		runtime.ReadMemStats(&after)
		if allocated := after.TotalAlloc - before.TotalAlloc; k != "" || allocated > 8<<20 {
			t.Errorf("%.12s...: %q, %d bytes allocated", text, k, allocated)
		}
	}
	// At the deepest encoding/json decodes, a key given twice is still found.
	deepest := `{"a":` + strings.Repeat("[", maxDepth-1) + strings.Repeat("]", maxDepth-1) + `,"a":1}`
	if k := DuplicateKey([]byte(deepest), ""); k != "a" {
		t.Errorf("a key twice around a value nested %d deep: %q", maxDepth, k)
	}
	got := readAll(t, strings.Repeat("[", MaxLine))
	if len(got) != 1 || got[0].bad == nil || !strings.Contains(got[0].bad.Error(), "not a valid record: a value is nested more than 10000 deep") {
		t.Errorf("a line of '[': %+v", got)
	}
}

// TestTimesAsWritten: a time reads as the Writer would write it back, which reads
// again: an offset that takes it out of the years 0000 to 9999 in UTC is a bad line
// (it was written as -0001-12-31T23:00:00.000Z, which no reader takes), and what is
// finer than a millisecond is cut (0001-01-01T00:00:00.0000001Z was written as the
// zero time, which reads back as no time at all). Found writing FuzzReader.
func TestTimesAsWritten(t *testing.T) {
	for in, want := range map[string]string{
		"0000-01-01T00:00:00+01:00": `line 1: createdAt: "0000-01-01T00:00:00+01:00" is outside the years 0000 to 9999 in UTC`,
		"9999-12-31T23:30:00-01:00": `line 1: createdAt: "9999-12-31T23:30:00-01:00" is outside the years 0000 to 9999 in UTC`,
	} {
		got := readAll(t, `{"apiKey":"3_abc","UID":"u1","createdAt":"`+in+`"}`)
		if len(got) != 1 || got[0].bad == nil || got[0].bad.Error() != want {
			t.Errorf("%s: %+v, want %q", in, got, want)
		}
	}
	for in, want := range map[string]time.Time{
		"0000-01-01T00:00:00-01:00":     time.Date(0, 1, 1, 1, 0, 0, 0, time.UTC),
		"2026-11-28T10:00:00.1239999Z":  time.Date(2026, 11, 28, 10, 0, 0, 123_000_000, time.UTC),
		"0001-01-01T00:00:00.0000001Z":  {},
		"2026-11-28T11:00:00.123+01:00": t0,
	} {
		got := readAll(t, `{"apiKey":"3_abc","UID":"u1","createdAt":"`+in+`"}`)
		if len(got) != 1 || got[0].rec == nil || !got[0].rec.User.CreatedAt.Equal(want) {
			t.Errorf("%s: %+v, want %v", in, got, want)
		}
	}
}

// TestBadLineMessages: a bad line is explained in the format's words, not Go's types;
// a byte order mark before the first line is skipped.
func TestBadLineMessages(t *testing.T) {
	for in, want := range map[string]string{
		`[]`:     "line 1: not a valid record: a line is one JSON object, not a list",
		`"user"`: "line 1: not a valid record: a line is one JSON object, not a string",
		`{"apiKey":"3_abc","UID":"x","profile":[]}`:     "line 1: not a valid record: profile must be an object, not a list",
		`{"apiKey":"3_abc","UID":7}`:                    "line 1: not a valid record: UID must be a string, not a number",
		`{"kind":"key","methods":"all"}`:                "line 1: not a valid record: methods must be a list of strings, not a string",
		`{"apiKey":"3_abc","UID":"x","loggedIn":"yes"}`: "line 1: not a valid record: loggedIn must be true or false, not a string",
		`{"apiKey":"3_abc","UID":"x","extra":1}`:        `line 1: not a valid record: unknown field "extra"`,
		`{"apiKey":`:                                    "line 1: not a valid record: the JSON object is cut short",
		`{x}`:                                           "line 1: not a valid record: not JSON (at byte 2)",
		// JSON, nested deeper than encoding/json reads: it was "not JSON".
		`{"apiKey":"3_abc","UID":"x","profile":{"nickname":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}}`: "line 1: not a valid record: a value is nested more than 10000 deep (at byte 10049)",
		// Fields of another kind: they were dropped without a word.
		`{"kind":"user","apiKey":"3_abc","UID":"nm","secret":"x","methods":["getUserInfo"]}`:                                 "line 1: user: secret, methods are not fields of a user record",
		`{"kind":"site","apiKey":"3_abc","secret":"c2VjcmV0LWZvci10aGUtZ2lneWEtbGFiLTEyMzQ1Ng==","UID":"u","loggedIn":true}`: "line 1: site: UID, loggedIn are not fields of a site record",
		`{"apiKey":"3_abc","secret":"c2VjcmV0LWZvci10aGUtZ2lneWEtbGFiLTEyMzQ1Ng==","name":"x"}`:                              `line 1: user: secret, name are not fields of a user record (a line without "kind" is a user's: give "kind": "site" or "key")`,
	} {
		got := readAll(t, in)
		if len(got) != 1 || got[0].bad == nil || got[0].bad.Error() != want {
			t.Errorf("%s: %+v, want %q", in, got, want)
		}
		if len(got) == 1 && got[0].bad != nil && strings.Contains(got[0].bad.Error(), "Go ") {
			t.Errorf("%s: %s names Go's types", in, got[0].bad)
		}
	}
	got := readAll(t, "\xef\xbb\xbf"+`{"apiKey":"3_abc","UID":"bom"}`)
	if len(got) != 1 || got[0].rec == nil || got[0].rec.User.UID != "bom" {
		t.Errorf("a line after a byte order mark: %+v", got)
	}
}

// TestRefusedValuesClipped: a bad line quotes the value it refuses clipped, with its
// length, whatever its size: an apiKey, a userKey, a time, a kind, a field's name or a
// method of most of a megabyte was quoted whole, a megabyte of standard error (and of
// the emulator's answer to a seed) for each such line.
func TestRefusedValuesClipped(t *testing.T) {
	big := strings.Repeat("é", 300_000) // 600,000 bytes, cut where a character starts
	const secret = "c2VjcmV0LWZvci10aGUtZ2lneWEtbGFiLTEyMzQ1Ng=="
	for _, line := range []string{
		`{"kind":"site","apiKey":"3_` + big + `","secret":"` + secret + `"}`,
		`{"kind":"key","userKey":"A` + big + `","apiKey":"3_abc","secret":"` + secret + `"}`,
		`{"kind":"key","userKey":"AKey1","apiKey":"3_` + big + `","secret":"` + secret + `"}`,
		`{"apiKey":"3_` + big + `","UID":"u1"}`,
		`{"apiKey":"3_abc","UID":"u1","createdAt":"` + big + `"}`,
		`{"kind":"` + big + `","apiKey":"3_abc","UID":"u1"}`,
		`{"apiKey":"3_abc","UID":"u1","profile":{"` + big + `":"x"}}`,
		`{"apiKey":"3_abc","UID":"u1","` + big + `":1}`,
		`{"apiKey":"3_abc","UID":"u1","` + big[:400_000] + `":1,"` + big[:400_000] + `":2}`,
		`{"apiKey":"3_abc","UID":"u1","createdAt":"0000-01-01T00:00:00.` + strings.Repeat("0", 600_000) + `+01:00"}`,
	} {
		got := readAll(t, line)
		if len(got) != 1 || got[0].bad == nil {
			t.Errorf("%.40s...: %+v, want a bad line", line, got)
			continue
		}
		msg := got[0].bad.Error()
		if len(msg) > 300 || !utf8.ValidString(msg) || !strings.Contains(msg, `"... (`) || !strings.Contains(msg, " bytes)") {
			t.Errorf("%.40s...: %d bytes of message, want the value clipped with its length: %.300s", line, len(msg), msg)
		}
	}
}

// TestPublicKeyAsKeyCreateStoresIt: a key line's publicKey, in PKCS #1 or in PKIX with
// text around the block (as `openssl rsa -pubin -text` writes it), is read as `socius
// key create --public-key` stores it: PKIX PEM, the block alone. It was read as
// written, so that a key given in PKCS #1 to one and to the other was two texts.
func TestPublicKeyAsKeyCreateStoresIt(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := socius.EncodeRSAPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, given := range []string{
		string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&priv.PublicKey)})),
		"Public-Key: (2048 bit)\nModulus: ...\n" + stored + "\n",
		stored,
	} {
		pk, _ := json.Marshal(given)
		line := `{"kind":"key","userKey":"AKey1","apiKey":"3_abc","secret":"dXNlci1zZWNyZXQtZm9yLWxhYg==","publicKey":` + string(pk) + "}\n"
		rec, err := NewReader(strings.NewReader(line)).Next()
		if err != nil {
			t.Fatal(err)
		}
		if rec.Key.PublicKey != stored {
			t.Errorf("publicKey given as\n%s\nread as\n%s\nwant\n%s", given, rec.Key.PublicKey, stored)
		}
	}
}
