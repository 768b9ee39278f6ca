package gigya

import (
	"encoding/json"
	"encoding/xml"
	"strings"
	"testing"
	"time"
)

var testTime = time.Date(2026, 11, 28, 10, 5, 21, 123_000_000, time.UTC)

func TestEnvelopeSuccess(t *testing.T) {
	e := Envelope{CallID: "0123456789abcdef0123456789abcdef", Time: testTime, Context: "R1",
		Data: Object{{"UID", "u1"}, {"isSiteUID", true}, {"age", 30}}}
	body, ct := Encode(JSON, "socialize.getUserInfo", "", e.Object())
	if ct != "application/json; charset=utf-8" {
		t.Errorf("content type %q", ct)
	}
	want := `{"callId":"0123456789abcdef0123456789abcdef","errorCode":0,"apiVersion":2,"statusCode":200,"statusReason":"OK","time":"2026-11-28T10:05:21.123Z","context":"R1","UID":"u1","isSiteUID":true,"age":30}`
	if string(body) != want {
		t.Errorf("got  %s\nwant %s", body, want)
	}
}

func TestEnvelopeError(t *testing.T) {
	e := Envelope{CallID: "c", Code: 403004, Details: "Duplicate nonce", Time: testTime}
	body, _ := Encode(JSON, "socialize.setUserInfo", "", e.Object())
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"errorCode": 403004.0, "errorMessage": "Duplicate nonce", "errorDetails": "Duplicate nonce",
		"statusCode": 403.0, "statusReason": "Forbidden", "apiVersion": 2.0} {
		if m[k] != want {
			t.Errorf("%s = %v, want %v", k, m[k], want)
		}
	}
}

func TestEnvelopeIgnoredParams(t *testing.T) {
	e := Envelope{CallID: "c", Time: testTime, Ignored: []IgnoredParam{{"foo", 403007, "not a parameter of this method"}}}
	body, _ := Encode(JSON, "m", "", e.Object())
	if !strings.Contains(string(body), `"ignoredParams":[{"paramName":"foo","warningCode":403007,"message":"not a parameter of this method"}]`) {
		t.Errorf("ignoredParams missing: %s", body)
	}
}

func TestJSONEscaping(t *testing.T) {
	got := string(AppendJSON(nil, "a\"b\\c</script>&\u2028\x01\xff\ufffd🎉"))
	want := `"a\"b\\c\u003c/script\u003e\u0026\u2028\u0001\ufffd\ufffd🎉"`
	if got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	var back string
	if err := json.Unmarshal([]byte(got), &back); err != nil {
		t.Fatal(err)
	}
}

func TestJSONP(t *testing.T) {
	e := Envelope{CallID: "c", Time: testTime}
	body, ct := Encode(JSONP, "m", "gigya.callback", e.Object())
	if ct != "text/javascript; charset=utf-8" || !strings.HasPrefix(string(body), "gigya.callback({") || !strings.HasSuffix(string(body), "});") {
		t.Errorf("%s %s", ct, body)
	}
	for name, ok := range map[string]bool{"cb": true, "gigya.cb_1$": true, "": false, "a(b)": false, "x;alert(1)": false, "a b": false, strings.Repeat("a", 129): false} {
		if ValidCallback(name) != ok {
			t.Errorf("ValidCallback(%q) = %v", name, !ok)
		}
	}
}

func TestXML(t *testing.T) {
	e := Envelope{CallID: "c", Time: testTime, Data: Object{{"UID", "a<b>&\"'\x01"}, {"identities", []Object{{{"provider", "site"}}}}, {"ok", true}}}
	body, ct := Encode(XML, "socialize.getUserInfo", "", e.Object())
	if ct != "text/xml; charset=utf-8" {
		t.Error(ct)
	}
	if !strings.Contains(string(body), `<socialize.getUserInfoResponse xmlns="urn:com:gigya:api">`) {
		t.Errorf("root: %s", body)
	}
	var doc struct {
		XMLName    xml.Name
		UID        string `xml:"UID"`
		ErrorCode  int    `xml:"errorCode"`
		OK         bool   `xml:"ok"`
		Identities struct {
			Item []struct {
				Provider string `xml:"provider"`
			} `xml:"item"`
		} `xml:"identities"`
	}
	if err := xml.Unmarshal(body, &doc); err != nil {
		t.Fatalf("not well-formed: %v\n%s", err, body)
	}
	if doc.UID != "a<b>&\"'\uFFFD" || !doc.OK || len(doc.Identities.Item) != 1 || doc.Identities.Item[0].Provider != "site" {
		t.Errorf("parsed %+v", doc)
	}
	if doc.XMLName.Space != XMLNamespace {
		t.Errorf("namespace %q", doc.XMLName.Space)
	}
}

func TestNewCallID(t *testing.T) {
	a, b := NewCallID(), NewCallID()
	if len(a) != 32 || a == b || strings.ToLower(a) != a {
		t.Errorf("%q %q", a, b)
	}
}
