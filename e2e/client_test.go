package e2e

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // to read the stores behind the server's back
	"github.com/socius/socius"
	"github.com/socius/socius/gigya"
	"modernc.org/sqlite"
)

// A credential is what a call authenticates with: a site's partner secret, or one of
// its keys (Plain sends the secret in clear, over HTTPS, instead of signing); or an
// oauth_token (over HTTPS; a mobile session token's calls are also signed with its
// SessionSecret); or a bearer JWT signed with JWT for the key UserKey.
type credential struct {
	APIKey  string // for a token: sent only when not empty
	UserKey string // empty: the partner secret
	Secret  string
	Plain   bool

	Token         string
	SessionSecret string
	JWT           *rsa.PrivateKey
}

// The lab site of the shared captures: every test's first site.
var lab = credential{APIKey: "3_LabApiKey_AbC-123", Secret: "c2VjcmV0LWZvci10aGUtZ2lneWEtbGFiLTEyMzQ1Ng=="}

// labFlags makes `socius serve` create the lab site.
var labFlags = []string{"--site-api-key", lab.APIKey, "--site-secret", lab.Secret}

var nonceSeq atomic.Int64

// authorize returns params plus what cred needs to authenticate a POST to
// base/method: apiKey (and userKey), and either secret, or timestamp, nonce and sig.
// A timestamp or nonce already in params is kept.
func authorize(cred credential, base, method string, params url.Values) url.Values {
	p := url.Values{}
	for k, v := range params {
		p[k] = append([]string(nil), v...)
	}
	if _, ok := p["apiKey"]; !ok {
		p.Set("apiKey", cred.APIKey)
	}
	if cred.UserKey != "" {
		p.Set("userKey", cred.UserKey)
	}
	if cred.Plain {
		p.Set("secret", cred.Secret)
		return p
	}
	if p.Get("timestamp") == "" {
		p.Set("timestamp", strconv.FormatInt(time.Now().Unix(), 10))
	}
	if p.Get("nonce") == "" {
		p.Set("nonce", fmt.Sprintf("%d_%d", time.Now().UnixNano(), nonceSeq.Add(1)))
	}
	p.Set("sig", signature(cred.Secret, "POST", base+"/"+method, p))
	return p
}

// signature signs every parameter of p (but sig) for a request to rawURL.
func signature(secret, httpMethod, rawURL string, p url.Values) string {
	norm, err := gigya.NormalizeURL(rawURL)
	if err != nil {
		panic(err)
	}
	var list []gigya.Param
	for k, vs := range p {
		if k == "sig" {
			continue
		}
		for _, v := range vs {
			list = append(list, gigya.Param{Name: k, Value: v})
		}
	}
	key, err := socius.DecodeSecret(secret)
	if err != nil {
		panic(err)
	}
	return gigya.Sign(key, httpMethod, norm, list)
}

// answer is a decoded JSON envelope.
type answer map[string]any

func (a answer) code() int {
	f, ok := a["errorCode"].(float64)
	if !ok {
		return -1
	}
	return int(f)
}

func (a answer) str(k string) string {
	s, _ := a[k].(string)
	return s
}

// post sends params as a form body to base/method and decodes the answer. Transport
// failures are returned, not fatal: the crash and shutdown tests expect them.
func (p *proc) post(base, method string, params url.Values, header http.Header) (answer, error) {
	req, err := http.NewRequest("POST", base+"/"+method, strings.NewReader(params.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, fmt.Errorf("HTTP %d, answer is not JSON: %v: %.200s", resp.StatusCode, err, body)
	}
	return a, nil
}

// call authenticates with cred (over HTTPS for a plain secret or a token, else HTTP)
// and posts.
func (p *proc) call(cred credential, method string, params url.Values) (answer, error) {
	switch {
	case cred.Token != "":
		q := url.Values{"oauth_token": {cred.Token}}
		for k, v := range params {
			q[k] = v
		}
		if cred.APIKey != "" {
			q.Set("apiKey", cred.APIKey)
		}
		if cred.SessionSecret != "" {
			q.Set("timestamp", strconv.FormatInt(time.Now().Unix(), 10))
			q.Set("nonce", fmt.Sprintf("%d_%d", time.Now().UnixNano(), nonceSeq.Add(1)))
			q.Set("sig", signature(cred.SessionSecret, "POST", p.HTTPSURL+"/"+method, q))
		}
		return p.post(p.HTTPSURL, method, q, nil)
	case cred.JWT != nil:
		q := url.Values{"apiKey": {cred.APIKey}}
		for k, v := range params {
			q[k] = v
		}
		return p.post(p.HTTPSURL, method, q, http.Header{"Authorization": {"Bearer " + bearerJWT(cred.JWT, cred.UserKey)}})
	case cred.Plain:
		return p.post(p.HTTPSURL, method, authorize(cred, p.HTTPSURL, method, params), nil)
	}
	return p.post(p.HTTPURL, method, authorize(cred, p.HTTPURL, method, params), nil)
}

// bearerJWT is a fresh RS256 JWT for the key kid (iat now, a new jti).
func bearerJWT(priv *rsa.PrivateKey, kid string) string {
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]any{"alg": "RS256", "typ": "JWT", "kid": kid})
	c, _ := json.Marshal(map[string]any{"iat": time.Now().Unix(), "jti": fmt.Sprintf("%d_%d", time.Now().UnixNano(), nonceSeq.Add(1))})
	input := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	digest := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, digest[:])
	if err != nil {
		panic(err)
	}
	return input + "." + enc.EncodeToString(sig)
}

// mustCall is call for calls that must succeed.
func (p *proc) mustCall(cred credential, method string, params url.Values) answer {
	p.t.Helper()
	a, err := p.call(cred, method, params)
	if err != nil {
		p.t.Fatalf("%s: %v", method, err)
	}
	if a.code() != 0 {
		p.t.Fatalf("%s %v: %v", method, params, a)
	}
	return a
}

// login creates (or logs in) a user of the credential's site.
func (p *proc) login(cred credential, uid, userInfo string) {
	p.t.Helper()
	params := url.Values{"siteUID": {uid}}
	if userInfo != "" {
		params.Set("userInfo", userInfo)
	}
	p.mustCall(cred, "socialize.notifyLogin", params)
}

// openDB opens the store of p directly from the test process: its SQLite file,
// read-only, or its PostgreSQL database.
func openDB(t *testing.T, p *proc) *sql.DB {
	t.Helper()
	var db *sql.DB
	var err error
	if p.storeURL != "" {
		db, err = sql.Open("pgx", p.storeURL)
	} else {
		db, err = sql.Open("sqlite", filepath.Join(p.dir, "socius.db")+"?_pragma=busy_timeout(5000)&_pragma=query_only(1)")
	}
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

// snapshot renders every row of the tables of sites, keys, users and tokens as text,
// for "nothing changed" comparisons. With apiKey, only that site's rows.
func snapshot(t *testing.T, db *sql.DB, apiKey string) string {
	t.Helper()
	where := ""
	if apiKey != "" {
		where = " WHERE api_key = '" + strings.ReplaceAll(apiKey, "'", "''") + "'"
	}
	users := `SELECT * FROM users` + where + ` ORDER BY api_key, uid`
	if _, ok := db.Driver().(*sqlite.Driver); ok {
		// The SQLite store keys its users by the site's number, sites.id.
		users = `SELECT sites.api_key, users.* FROM users JOIN sites ON sites.id = users.site` + where + ` ORDER BY api_key, uid`
	}
	var b strings.Builder
	for _, q := range []string{
		`SELECT * FROM sites` + where + ` ORDER BY api_key`,
		`SELECT * FROM keys` + where + ` ORDER BY user_key`,
		users,
		`SELECT * FROM tokens` + where + ` ORDER BY hash`,
	} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatalf("snapshot: %v", err)
			}
			for i, v := range vals {
				if i > 0 {
					b.WriteByte('|')
				}
				if s, ok := v.([]byte); ok {
					v = string(s)
				}
				fmt.Fprintf(&b, "%s=%v", cols[i], v)
			}
			b.WriteByte('\n')
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		rows.Close()
		b.WriteString("--\n")
	}
	return b.String()
}
