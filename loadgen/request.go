package loadgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/gigya"
)

// The methods the scenarios call.
const (
	methodSetUserInfo = "socialize.setUserInfo"
	methodGetUserInfo = "socialize.getUserInfo"
	methodNotifyLogin = "socialize.notifyLogin"
)

// signer builds the signed requests of one worker, as an SDK does: every request gets
// the current timestamp, a nonce of its own and a signature computed with package
// gigya over the URL it is sent to. Nothing is reused from one request to the next
// except buffers.
type signer struct {
	key    []byte
	apiKey string
	base   string            // http://host:port
	norm   map[string]string // method -> normalized URL, as signed
	nonce  []byte            // prefix unique to this run and worker
	seq    uint64
	params []gigya.Param
	form   []byte
	info   []byte
}

func newSigner(t Target, worker int, run string) (*signer, error) {
	key, err := socius.DecodeSecret(t.Secret)
	if err != nil {
		return nil, fmt.Errorf("secret: %v", err)
	}
	s := &signer{key: key, apiKey: t.APIKey, base: t.URL, norm: map[string]string{}}
	for _, m := range []string{methodSetUserInfo, methodGetUserInfo, methodNotifyLogin} {
		if s.norm[m], err = gigya.NormalizeURL(t.URL + "/" + m); err != nil {
			return nil, err
		}
	}
	s.nonce = fmt.Appendf(nil, "%s-%d-", run, worker)
	return s, nil
}

// sign fills s.form with the signed form body of a call of method with the method's
// own parameters (name, value pairs) and returns the request path.
func (s *signer) sign(method string, args ...string) (string, []byte) {
	s.seq++
	nonce := strconv.AppendUint(s.nonce, s.seq, 10)
	s.params = append(s.params[:0],
		gigya.Param{Name: "apiKey", Value: s.apiKey},
		gigya.Param{Name: "format", Value: "json"},
		gigya.Param{Name: "httpStatusCodes", Value: "false"},
		gigya.Param{Name: "nonce", Value: string(nonce)},
		gigya.Param{Name: "sdk", Value: "socius_bench"},
		gigya.Param{Name: "timestamp", Value: strconv.FormatInt(time.Now().Unix(), 10)},
	)
	for i := 0; i+1 < len(args); i += 2 {
		s.params = append(s.params, gigya.Param{Name: args[i], Value: args[i+1]})
	}
	s.params = append(s.params, gigya.Param{Name: "sig", Value: gigya.Sign(s.key, "POST", s.norm[method], s.params)})
	f := s.form[:0]
	for i, p := range s.params {
		if i > 0 {
			f = append(f, '&')
		}
		f = append(f, p.Name...)
		f = append(f, '=')
		f = gigya.AppendEscape(f, p.Value)
	}
	s.form = f
	return "/" + method, f
}

// userInfo returns a typical setUserInfo profile patch, different on every call.
func (s *signer) userInfo(n uint64) string {
	b := append(s.info[:0], `{"firstName":"Ada","nickname":"bench-`...)
	b = strconv.AppendUint(b, n, 10)
	b = append(b, `","age":`...)
	b = strconv.AppendUint(b, 18+n%60, 10)
	b = append(b, '}')
	s.info = b
	return string(b)
}

// UID returns the UID of the n-th bench user.
func UID(n int) string { return "bench-" + strconv.Itoa(n) }

// errorCode reads errorCode from a JSON answer; -1 when it has none.
func errorCode(body []byte) int {
	const key = `"errorCode":`
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return -1
	}
	n, ok := 0, false
	for _, c := range body[i+len(key):] {
		if c < '0' || c > '9' {
			break
		}
		n, ok = n*10+int(c-'0'), true
	}
	if !ok {
		return -1
	}
	return n
}

// errorDetails reads errorDetails from a JSON answer, for the report.
func errorDetails(body []byte) string {
	const key = `"errorDetails":"`
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		if len(body) > 200 {
			body = body[:200]
		}
		return string(body)
	}
	// The JSON string, up to its closing quote (an escaped one does not end it), then
	// decoded: "\u0026" is "&" in the details a reader sees.
	start := i + len(key) - 1
	end := start + 1
	for end < len(body) && body[end] != '"' {
		if body[end] == '\\' {
			end++
		}
		end++
	}
	var s string
	if end >= len(body) || json.Unmarshal(body[start:end+1], &s) != nil {
		return string(body[start+1 : min(end, len(body))])
	}
	return s
}
