package server

import (
	"fmt"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/socius/socius/gigya"
)

// maskedCall is a signed setUserInfo's parameters, the secret of its site in none.
func maskedCall() []gigya.Param {
	return []gigya.Param{{Name: "apiKey", Value: "3_LabApiKey_AbC-123"}, {Name: "format", Value: "json"},
		{Name: "nonce", Value: "1234567_1"}, {Name: "timestamp", Value: "1790000000"}, {Name: "UID", Value: "u1"},
		{Name: "userInfo", Value: `{"firstName":"David","nickname":"n1","age":30}`}, {Name: "sig", Value: "AAAAAAAAAAAAAAAAAAAAAAAAAAA="}}
}

const maskedSecret = "c2VjcmV0LWZvci10aGUtZ2lneWEtbGFiLTEyMzQ1Ng=="

// TestStoredSecretsCostNoAllocation: every call's observers look for its site's and
// key's secrets in its values (maskParams' also), so a call that holds neither must
// not pay for escaping them: as many allocations as without them (it took 33 more, the
// secret escaped for every value).
func TestStoredSecretsCostNoAllocation(t *testing.T) {
	params := maskedCall()
	without := testing.AllocsPerRun(100, func() { maskParams(params) })
	with := testing.AllocsPerRun(100, func() { maskParams(params, maskedSecret, "QUJDREVGR0hJSktMTU5PUA==") })
	if with > without {
		t.Errorf("maskParams: %v allocations with two secrets to look for, %v without", with, without)
	}
}

// TestStoredSecretsHiddenInEveryForm: a stored secret is hidden in a value that holds
// it as sent, escaped once or twice (a base string's form), among other text.
func TestStoredSecretsHiddenInEveryForm(t *testing.T) {
	once := gigya.Escape(maskedSecret)
	for _, form := range []string{maskedSecret, once, gigya.Escape(once)} {
		params := append(maskedCall(), gigya.Param{Name: "context", Value: "x" + form + "y"})
		out, hidden := maskParams(params, maskedSecret)
		if got := out[len(out)-1].Value; got != "x***y" || len(hidden) != 1 {
			t.Errorf("%q: shown as %q, %d values hidden", form, got, len(hidden))
		}
	}
	if _, hidden := maskParams(maskedCall(), maskedSecret); len(hidden) != 0 {
		t.Errorf("a call without the secret: %q hidden", hidden)
	}
	// A value that holds only part of the secret's letters is looked at, and left.
	params := append(maskedCall(), gigya.Param{Name: "context", Value: maskedSecret[:20]})
	if out, _ := maskParams(params, maskedSecret); !strings.HasPrefix(out[len(out)-1].Value, maskedSecret[:20]) {
		t.Errorf("part of the secret: shown as %q", out[len(out)-1].Value)
	}
}

// TestStoredSecretWithWhitespaceHidden: a secret stored with the whitespace it was
// typed with (its newline, before 2026-11-30) is hidden as clients send it, without:
// only the stored text was looked for, and a value holding the secret was shown whole.
func TestStoredSecretWithWhitespaceHidden(t *testing.T) {
	for _, stored := range []string{maskedSecret + "\n", maskedSecret[:20] + " " + maskedSecret[20:] + "\r\n"} {
		params := append(maskedCall(), gigya.Param{Name: "context", Value: "x" + maskedSecret + "y"})
		out, _ := maskParams(params, stored)
		if got := out[len(out)-1].Value; got != "x***y" {
			t.Errorf("secret stored as %q: shown as %q", stored, got)
		}
	}
}

// TestProviderSessionsMasked: notifyLogin's providerSessions holds the providers'
// tokens and secrets under names that say neither: no observer sees them, in the
// value (its strings masked, its structure kept; masked whole when it is no JSON), in
// another parameter (the values of one that is JSON), the details or the base strings.
func TestProviderSessionsMasked(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	s.cfg.ExplainSignatures = true
	var calls []Call
	s.cfg.Observe = func(c *Call) { calls = append(calls, *c) }
	const token, secret = "EAAFbTokenOfFacebook123", "tokenSecret/Of+Twitter"
	for _, sessions := range []string{
		`{"facebook":{"authToken":"` + token + `","tokenExpiration":1790000000},"twitter":{"authToken":"x","tokenSecret":"` + strings.ReplaceAll(secret, "/", `\/`) + `"}}`,
		`{"facebook":{"authToken":"` + token + `"`, // not JSON
	} {
		form := url.Values{"apiKey": {labAPIKey}, "siteUID": {"u1"}, "timestamp": {strconv.FormatInt(labTime.Unix(), 10)},
			"nonce": {"n" + strconv.Itoa(len(calls))}, "sig": {"AAAAAAAAAAAAAAAAAAAAAAAAAAA="}, "providerSessions": {sessions}}
		if len(calls) == 0 {
			form.Set("context", token) // hidden there too
		}
		r := httptest.NewRequest("POST", "https://socialize.localtest/socialize.notifyLogin", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if !strings.Contains(w.Body.String(), `"errorCode":403003`) {
			t.Fatalf("answer: %s", w.Body)
		}
	}
	if len(calls) != 2 {
		t.Fatalf("%d calls observed", len(calls))
	}
	for i, want := range []string{`{"facebook":{"authToken":"***","tokenExpiration":1790000000},"twitter":{"authToken":"***","tokenSecret":"***"}}`, "***"} {
		c := calls[i]
		var shown string
		for _, p := range c.Params {
			if p.Name == "providerSessions" {
				shown = p.Value
			}
		}
		if shown != want {
			t.Errorf("call %d: providerSessions shown as %s, want %s", i, shown, want)
		}
		if len(c.BaseStrings) == 0 {
			t.Errorf("call %d: no base strings", i)
		}
		all := fmt.Sprint(c.Params, c.Details, c.BaseStrings)
		for _, v := range []string{token, "Of+Twitter", "Of%2BTwitter", "Of%252BTwitter"} {
			if strings.Contains(all, v) {
				t.Errorf("call %d: %q observed in %s", i, v, all)
			}
		}
	}
}

// TestProviderSessionsHiddenBounded: the providerSessions values looked for elsewhere
// in a call are bounded (the longest maxSessionValues distinct ones, over every
// parameter of that name), as each is looked for in every parameter, the details and
// the base strings: four providerSessions of 64 KiB (MaxParamBytes), 8,000 strings
// each, made 32,000 values to hide, about a second of CPU a call for any caller. Every
// string is still masked in the value, and the tokens elsewhere, the first one's and
// one after thousands of shorter strings.
func TestProviderSessionsHiddenBounded(t *testing.T) {
	const first, late = "EAAFbTokenOfFacebook123", "LateTokenOfTwitter456789"
	params := maskedCall()
	for n := range 4 {
		var b strings.Builder
		b.WriteString(`{"facebook":{"authToken":"` + first + `"},"spare":[`)
		for i := 0; b.Len() < DefaultMaxParamBytes-100; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `"%d%04d"`, n, i)
		}
		b.WriteString(`],"twitter":{"authToken":"` + late + `"}}`)
		if _, err := gigya.ParseJSON(b.String()); err != nil {
			t.Fatalf("providerSessions: %v", err)
		}
		params = append(params, gigya.Param{Name: "providerSessions", Value: b.String()})
	}
	params = append(params, gigya.Param{Name: "context", Value: first + " " + late})
	out, hidden := maskParams(params)
	if len(hidden) > maxSessionValues {
		t.Errorf("%d values to hide, want at most %d", len(hidden), maxSessionValues)
	}
	if got := out[len(out)-1].Value; got != masked+" "+masked {
		t.Errorf("the tokens sent again as the context: shown as %q", got)
	}
	for _, p := range out[len(out)-5 : len(out)-1] {
		if strings.Contains(p.Value, `"0`) || strings.Contains(p.Value, `"3`) || strings.Contains(p.Value, first) || strings.Contains(p.Value, late) {
			t.Errorf("providerSessions shown as %.80s...", p.Value)
		}
	}
}
