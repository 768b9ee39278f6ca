package gigya

import (
	"errors"
	"testing"
	"time"
)

// TestDecodeAnswerReadsEncode: what the server encodes, a client decodes.
func TestDecodeAnswerReadsEncode(t *testing.T) {
	now := time.Date(2026, 11, 28, 10, 5, 21, 123_000_000, time.UTC)
	for _, env := range []Envelope{
		{CallID: "0123456789abcdef0123456789abcdef", Time: now, Data: Object{{"UID", "u1"}, {"age", 30}}},
		{CallID: "c2", Code: 403005, Details: "UID not found", Time: now,
			Ignored: []IgnoredParam{{"shoeSize", 403007, "ignored"}}},
	} {
		body, _ := Encode(JSON, "socialize.getUserInfo", "", env.Object())
		a, err := DecodeAnswer(body)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if a.CallID != env.CallID || a.Code != env.Code || a.Details != env.Details || a.Message != Message(env.Code) ||
			a.StatusCode != StatusCode(env.Code) || a.StatusReason != StatusReason(StatusCode(env.Code)) ||
			a.APIVersion != APIVersion || !a.Time.Equal(now) || len(a.Ignored) != len(env.Ignored) {
			t.Errorf("decoded %+v from %s", a, body)
		}
		for i := range a.Ignored {
			if a.Ignored[i] != env.Ignored[i] {
				t.Errorf("ignored %+v, want %+v", a.Ignored[i], env.Ignored[i])
			}
		}
	}
}

func TestDecodeAnswerRefusesNonAnswers(t *testing.T) {
	for _, body := range []string{
		"",
		"<html>502 Bad Gateway</html>",
		" {\"errorCode\":0}",
		"\ufeff{\"errorCode\":0}",
		"{\"errorCode\":0",
		"{\"callId\":\"x\"}",
		"{\"errorCode\":\"abc\"}",
		"{\"errorCode\":1.5}",
		"gigya.cb({\"errorCode\":0});",
	} {
		if a, err := DecodeAnswer([]byte(body)); !errors.Is(err, ErrNotAnswer) {
			t.Errorf("%q: got %+v, %v; want ErrNotAnswer", body, a, err)
		}
	}
	// Lenient on the rest: a minimal answer, a quoted errorCode.
	for body, code := range map[string]int{`{"errorCode":0}`: 0, `{"errorCode":"403005","statusCode":"x"}`: 403005} {
		a, err := DecodeAnswer([]byte(body))
		if err != nil || a.Code != code {
			t.Errorf("%s: %+v %v", body, a, err)
		}
	}
}

// FuzzDecodeAnswer: any body either decodes or is refused with ErrNotAnswer; never a
// panic. An answer that decodes, encoded again as the server encodes its envelope,
// decodes to the same answer: its callId, errorCode, errorDetails (on an error),
// ignoredParams and time (to the millisecond the encoding keeps; a time outside the
// years 0000-9999 is never read).
func FuzzDecodeAnswer(f *testing.F) {
	f.Add([]byte(`{"callId":"x","errorCode":403005,"errorDetails":"UID not found","ignoredParams":[{"paramName":"a","warningCode":403007}]}`))
	f.Add([]byte(`{"errorCode":"0","time":"2026-11-28T10:05:21.123Z"}`))
	f.Add([]byte(`<xml/>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := DecodeAnswer(body)
		if err != nil && !errors.Is(err, ErrNotAnswer) {
			t.Fatalf("error %v does not wrap ErrNotAnswer", err)
		}
		if err == nil && a == nil {
			t.Fatal("nil answer without error")
		}
		if err != nil {
			return
		}
		when := a.Time.UTC().Truncate(time.Millisecond)
		if when.Year() < 0 || when.Year() > 9999 {
			t.Fatalf("%s: time %v, outside the years 0000-9999", body, a.Time)
		}
		env := Envelope{CallID: a.CallID, Code: a.Code, Details: a.Details, Time: when, Ignored: a.Ignored}
		again, _ := Encode(JSON, "socialize.getUserInfo", "", env.Object())
		b, err := DecodeAnswer(again)
		if err != nil {
			t.Fatalf("%s, encoded again as %s: %v", body, again, err)
		}
		same := b.CallID == a.CallID && b.Code == a.Code && b.Time.Equal(when) &&
			(a.Code == 0 || b.Details == a.Details) && len(b.Ignored) == len(a.Ignored)
		for i := 0; same && i < len(a.Ignored); i++ {
			same = b.Ignored[i] == a.Ignored[i]
		}
		if !same {
			t.Fatalf("%s decodes to %+v; encoded again, %s decodes to %+v", body, a, again, b)
		}
	})
}

// TestDecodeAnswerTime: an answer's time is read when it is RFC 3339 within the years
// 0000-9999 in UTC, and left zero otherwise (the answer itself is read): never a time
// that RFC 3339, or time.Time's MarshalJSON, cannot write.
func TestDecodeAnswerTime(t *testing.T) {
	for _, tt := range []struct {
		time string
		want time.Time
	}{
		{"2026-11-28T10:05:21.123Z", time.Date(2026, 11, 28, 10, 5, 21, 123e6, time.UTC)},
		{"2026-11-28T11:05:21+01:00", time.Date(2026, 11, 28, 10, 5, 21, 0, time.UTC)},
		{"0000-01-01T00:00:00Z", time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"9999-12-31T23:59:59.999Z", time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC)},
		{"9999-12-31T23:59:59-01:00", time.Time{}}, // the year 10000 in UTC
		{"0000-01-01T00:30:00+01:00", time.Time{}}, // the year -1 in UTC
		{"10000-01-01T00:00:00Z", time.Time{}},
		{"2026-11-28T10:05:21,123Z", time.Time{}},  // a comma: ISO 8601, not RFC 3339
		{"2026-11-28T10:05:21+24:00", time.Time{}}, // no such offset
		{"2026-11-28T10:05:21-99:59", time.Time{}},
		{"2026-11-28T10:05:21+00:60", time.Time{}}, // no such minute: time.Parse reads +01:00
		{"2026-11-28T10:05:21-05:60", time.Time{}},
		{"2026-11-28T10:05:21+05:59", time.Date(2026, 11, 28, 4, 6, 21, 0, time.UTC)},
		{"2026-11-28 10:05:21Z", time.Time{}},
		{"1764324321", time.Time{}},
		{"", time.Time{}},
	} {
		body := `{"errorCode":0,"callId":"c","time":"` + tt.time + `"}`
		a, err := DecodeAnswer([]byte(body))
		if err != nil {
			t.Errorf("%s: %v", body, err)
			continue
		}
		if !a.Time.Equal(tt.want) || a.Time.IsZero() != tt.want.IsZero() {
			t.Errorf("time %q: %v, want %v", tt.time, a.Time, tt.want)
		}
		if _, err := a.Time.MarshalJSON(); err != nil {
			t.Errorf("time %q read as %v: %v", tt.time, a.Time, err)
		}
	}
}

func FuzzDecodeXMLAnswer(f *testing.F) {
	f.Add([]byte(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<socialize.getUserInfoResponse xmlns="urn:com:gigya:api"><callId>c</callId><errorCode>0</errorCode><identities><item><provider>site</provider></item></identities></socialize.getUserInfoResponse>`))
	f.Add([]byte(`<a xmlns="urn:com:gigya:api"><errorCode>x</errorCode></a>`))
	f.Add([]byte(`{"errorCode":0}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := DecodeXMLAnswer(body)
		if err != nil && !errors.Is(err, ErrNotAnswer) {
			t.Fatalf("error %v does not wrap ErrNotAnswer", err)
		}
		if err == nil && a["errorCode"] == "" {
			t.Fatal("an answer without errorCode was accepted")
		}
	})
}

// TestDecodeXMLAnswerReadsEncode: the top-level fields of an XML answer, as text.
func TestDecodeXMLAnswerReadsEncode(t *testing.T) {
	now := time.Date(2026, 11, 28, 10, 5, 21, 123_000_000, time.UTC)
	env := Envelope{CallID: "c1", Code: 403005, Details: "UID <not> found & gone", Time: now,
		Data: Object{{"identities", []Object{{{"provider", "site"}}}}}}
	body, _ := Encode(XML, "socialize.getUserInfo", "", env.Object())
	got, err := DecodeXMLAnswer(body)
	if err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	want := map[string]string{"callId": "c1", "errorCode": "403005", "errorDetails": env.Details,
		"statusCode": "403", "time": "2026-11-28T10:05:21.123Z", "identities": ""}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q (in %s)", k, got[k], v, body)
		}
	}
}

func TestDecodeXMLAnswerRefusesNonAnswers(t *testing.T) {
	for _, body := range []string{
		"",
		`<?xml version="1.0"?>`,
		"<html>502 Bad Gateway</html>",
		`<socialize.getUserInfoResponse><errorCode>0</errorCode></socialize.getUserInfoResponse>`,
		`<getUserInfo xmlns="urn:com:gigya:api"><errorCode>0</errorCode></getUserInfo>`,
		`<r.Response xmlns="urn:com:gigya:api"><errorCode>0</errorCode>`,
		`<r.Response xmlns="urn:com:gigya:api"><callId>x</callId></r.Response>`,
		`<r.Response xmlns="urn:com:gigya:api"><errorCode>abc</errorCode></r.Response>`,
		`{"errorCode":0}`,
	} {
		if f, err := DecodeXMLAnswer([]byte(body)); !errors.Is(err, ErrNotAnswer) {
			t.Errorf("%q: got %v, %v; want ErrNotAnswer", body, f, err)
		}
	}
}
