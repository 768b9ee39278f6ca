package client_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/client"
	"github.com/socius/socius/nonce"
	"github.com/socius/socius/server"
	"github.com/socius/socius/sqlite"
)

// The examples run against a real Socius started in-process (see TestMain): baseURL
// is where it listens, as http://127.0.0.1:8080 is for `socius serve`, httpsURL its
// HTTPS listener (https://127.0.0.1:8443) and certFile that listener's certificate
// (socius-data/tls-cert.pem), and apiKey and partnerSecret are its site's
// credentials, as `socius site create` prints them.
var baseURL, httpsURL, certFile string

const (
	apiKey        = "3_ExampleSite"
	partnerSecret = "c2VjcmV0LWZvci10aGUtZ2lneWEtbGFiLTEyMzQ1Ng=="
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "socius-client-example")
	if err != nil {
		log.Fatal(err)
	}
	st, err := sqlite.Open(dir + "/socius.db")
	if err != nil {
		log.Fatal(err)
	}
	if err := st.CreateSite(context.Background(), &socius.Site{APIKey: apiKey, Secret: partnerSecret, CreatedAt: time.Now()}); err != nil {
		log.Fatal(err)
	}
	handler := server.New(server.Config{Store: st, Nonces: nonce.New(0),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	srv := httptest.NewServer(handler)
	baseURL = srv.URL
	tlsSrv := httptest.NewTLSServer(handler)
	httpsURL = tlsSrv.URL
	certFile = dir + "/tls-cert.pem"
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw})
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		log.Fatal(err)
	}
	code := m.Run()
	srv.Close()
	tlsSrv.Close()
	st.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

// readmeExample is the example of README.md's "Go client" section, word for word:
// Example_readme runs it, so that it compiles and works as shown.
func readmeExample(ctx context.Context, baseURL, apiKey, partnerSecret string) error {
	c, err := client.New(client.PartnerSecret(apiKey, partnerSecret),
		client.WithBaseURL(baseURL)) // Socius: "http://127.0.0.1:8080"; Gigya: client.WithDataCenter("eu1.gigya.com")
	if err != nil {
		return err
	}
	if _, err := c.NotifyLogin(ctx, client.NotifyLoginRequest{SiteUID: "u1"}); err != nil {
		return err
	}
	if err := c.SetUserInfo(ctx, "u1", client.UserInfo{FirstName: "David", Age: client.Age(30)}); err != nil {
		return err
	}
	user, err := c.GetUserInfo(ctx, "u1") // UIDSignature checked with the partner secret
	var e *client.Error
	if errors.As(err, &e) && e.Code == 403005 { // Unauthorized user: e.Details, e.CallID, e.Response
		return fmt.Errorf("no user u1: %s (callId %s)", e.Details, e.CallID)
	} else if err != nil {
		return err // a *client.TransportError, a *client.ResponseError, another *client.Error...
	}
	fmt.Println(user.UID, user.FirstName, *user.Age)
	resp, err := c.Call(ctx, "socialize.setUID", client.Params{"UID": "u1", "siteUID": "u2"}) // any method
	if err != nil {
		return err
	}
	fmt.Println(resp.StatusCode) // the answer's data: resp.Decode(&v)
	return nil
}

// Example_readme runs the example of README.md (readmeExample) against the Socius of
// TestMain. It comes first: it renames u1 to u2, which the examples after it create
// again, or log in.
func Example_readme() {
	if err := readmeExample(context.Background(), baseURL, apiKey, partnerSecret); err != nil {
		log.Fatal(err)
	}
	// Output:
	// u1 David 30
	// 200
}

func Example() {
	ctx := context.Background()
	c, err := client.New(client.PartnerSecret(apiKey, partnerSecret), client.WithBaseURL(baseURL))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.NotifyLogin(ctx, client.NotifyLoginRequest{SiteUID: "u1"}); err != nil {
		log.Fatal(err)
	}
	if err := c.SetUserInfo(ctx, "u1", client.UserInfo{FirstName: "David", Age: client.Age(30)}); err != nil {
		log.Fatal(err)
	}
	u, err := c.GetUserInfo(ctx, "u1") // its UIDSignature is checked with the partner secret
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(u.UID, u.FirstName, *u.Age, u.IsLoggedIn)
	// Output: u1 David 30 true
}

func ExampleNew() {
	// Gigya's European data center, signing with a userKey's secret: calls go to
	// https://socialize.eu1.gigya.com/socialize.<method>.
	c, err := client.New(client.UserKey("3_yourApiKey", "AUserKey", "dXNlci1zZWNyZXQtZm9yLWxhYg=="),
		client.WithDataCenter("eu1.gigya.com"),
		client.WithPartnerSecret(partnerSecret)) // only to validate UIDSignatures
	if err != nil {
		log.Fatal(err)
	}
	_ = c
	// Output:
}

func ExampleClient_NotifyLogin() {
	c, err := client.New(client.PartnerSecret(apiKey, partnerSecret), client.WithBaseURL(baseURL))
	if err != nil {
		log.Fatal(err)
	}
	login, err := c.NotifyLogin(context.Background(), client.NotifyLoginRequest{
		SiteUID:  "site-user-7",
		NewUser:  true,
		UserInfo: &client.UserInfo{FirstName: "Ada"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(login.UID, login.CookieName)
	// Output: site-user-7 glt_3_ExampleSite
}

func ExampleClient_SetUserInfo() {
	ctx := context.Background()
	c, err := client.New(client.PartnerSecret(apiKey, partnerSecret), client.WithBaseURL(baseURL))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.NotifyLogin(ctx, client.NotifyLoginRequest{SiteUID: "u2", UserInfo: &client.UserInfo{Nickname: "dd", LastName: "Lab"}}); err != nil {
		log.Fatal(err)
	}
	// Set two fields, clear one, leave the others.
	if err := c.SetUserInfo(ctx, "u2", client.UserInfo{FirstName: "David", Gender: "m"}, "nickname"); err != nil {
		log.Fatal(err)
	}
	u, err := c.GetUserInfo(ctx, "u2")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%q %q %q %q\n", u.FirstName, u.LastName, u.Gender, u.Nickname)
	// Output: "David" "Lab" "m" ""
}

func ExampleClient_GetUserInfo() {
	ctx := context.Background()
	c, err := client.New(client.PartnerSecret(apiKey, partnerSecret), client.WithBaseURL(baseURL))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.NotifyLogin(ctx, client.NotifyLoginRequest{SiteUID: "u3", UserInfo: &client.UserInfo{Email: "u3@example.com"}}); err != nil {
		log.Fatal(err)
	}
	u, err := c.GetUserInfo(ctx, "u3")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(u.Email, u.LoginProvider, u.Identities[0].Provider)
	// Fields the User type does not model are in the whole answer.
	var extra struct {
		Capabilities string `json:"capabilities"`
	}
	if err := u.Response.Decode(&extra); err != nil {
		log.Fatal(err)
	}
	fmt.Println(extra.Capabilities)
	// Output:
	// u3@example.com site site
	// None
}

func ExampleClient_Call() {
	ctx := context.Background()
	c, err := client.New(client.PartnerSecret(apiKey, partnerSecret), client.WithBaseURL(baseURL))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.NotifyLogin(ctx, client.NotifyLoginRequest{SiteUID: "temp-42"}); err != nil {
		log.Fatal(err)
	}
	// Any method, with any parameters: socialize.setUID renames a user.
	resp, err := c.Call(ctx, "socialize.setUID", client.Params{"UID": "temp-42", "siteUID": "u4"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.StatusCode, len(resp.CallID))
	// Output: 200 32
}

func ExampleClient_GetToken() {
	ctx := context.Background()
	// getToken goes over HTTPS only: trust Socius's certificate (certFile stands for
	// socius-data/tls-cert.pem) in the HTTP client the client uses.
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		log.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(certPEM) {
		log.Fatal("no certificate in ", certFile)
	}
	// A clone of net/http's default transport keeps what a bare &http.Transport{}
	// lacks: the proxy of HTTPS_PROXY and NO_PROXY, HTTP/2, and its dial and TLS
	// handshake timeouts. The timeout is this client's to set now: without one, a call
	// would wait for as long as its context lets it.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: roots}
	hc := &http.Client{Timeout: client.DefaultTimeout, Transport: tr}
	c, err := client.New(client.PartnerSecret(apiKey, partnerSecret), client.WithBaseURL(httpsURL), client.WithHTTPClient(hc))
	if err != nil {
		log.Fatal(err)
	}
	grant, err := c.GetToken(ctx, client.GetTokenRequest{SiteUID: "u1", SessionExpiration: time.Hour})
	if err != nil {
		log.Fatal(err)
	}
	// Calls with the token carry only oauth_token; it implies the user.
	tc, err := c.WithCredentials(client.Token(grant.AccessToken))
	if err != nil {
		log.Fatal(err)
	}
	u, err := tc.GetUserInfo(ctx, "")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(u.UID, grant.ExpiresIn)
	// Output: u1 1h0m0s
}

func ExampleError() {
	c, err := client.New(client.PartnerSecret(apiKey, partnerSecret), client.WithBaseURL(baseURL))
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.GetUserInfo(context.Background(), "nobody")
	var e *client.Error
	if errors.As(err, &e) {
		fmt.Println(e.Code, e.Message+":", e.Details)
	}
	// Output: 403005 Unauthorized user: UID not found
}

func ExampleTransportError() {
	// Where no server listens: the connection is refused, so the write never reached
	// a server, and sending it again cannot do it twice.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	nowhere := "http://" + ln.Addr().String()
	ln.Close()
	c, err := client.New(client.PartnerSecret(apiKey, partnerSecret), client.WithBaseURL(nowhere), client.WithRetries(0))
	if err != nil {
		log.Fatal(err)
	}
	err = c.SetUserInfo(context.Background(), "u1", client.UserInfo{FirstName: "David"})
	var te *client.TransportError
	switch {
	case errors.Is(err, client.ErrNotSent):
		fmt.Println("never sent: safe to send again")
	case errors.As(err, &te):
		fmt.Println("no answer, but the request may have arrived: check before sending it again")
	case err != nil:
		fmt.Println("answered:", err) // an *Error or a *ResponseError
	}
	fmt.Println(client.ErrorCode(err))
	// Output:
	// never sent: safe to send again
	// 500000
}

func ExampleValidateUIDSignature() {
	// A UIDSignature that Gigya (or Socius) returned with signatureTimestamp; maxAge 0
	// checks the signature only (this one is from 2023).
	err := client.ValidateUIDSignature(partnerSecret, "lab-uid-1", "1700000000", "SH9Jdmi11/E9hZvGr51xaK8GyKw=", 0)
	fmt.Println(err)
	err = client.ValidateUIDSignature(partnerSecret, "lab-uid-1", "1700000000", "SH9Jdmi11/E9hZvGr51xaK8GyKw=", 3*time.Minute)
	fmt.Println(errors.Is(err, client.ErrSignatureExpired))
	// Output:
	// <nil>
	// true
}

func ExampleUIDSignature() {
	sig, err := client.UIDSignature(partnerSecret, "lab-uid-1", "1700000000")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(sig)
	// Output: SH9Jdmi11/E9hZvGr51xaK8GyKw=
}

func ExampleWithTrace() {
	c, err := client.New(client.PartnerSecret(apiKey, partnerSecret), client.WithBaseURL(baseURL),
		client.WithTrace(func(tr *client.Trace) {
			// What the signature covered; sig and secrets are masked in tr.Params.
			fmt.Println(tr.Attempt, tr.Method, tr.NormalizedURL == baseURL+"/"+tr.Method, tr.ErrorCode)
		}))
	if err != nil {
		log.Fatal(err)
	}
	c.Logout(context.Background(), "nobody")
	// Output: 1 socialize.logout true 403005
}

// TestREADMEExample: the example of README.md's "Go client" section is readmeExample's
// body, which Example_readme compiles and runs: the README shows code that works.
func TestREADMEExample(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "## Go client\n")
	if !ok {
		t.Fatal(`README.md has no "## Go client" section`)
	}
	_, code, ok := strings.Cut(after, "```go\nimport \"github.com/socius/socius/client\"\n\n")
	if !ok {
		t.Fatal("the Go client section of README.md has no example")
	}
	code, _, _ = strings.Cut(code, "```\n")
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, fn, _ := strings.Cut(string(src), "func readmeExample(ctx context.Context, baseURL, apiKey, partnerSecret string) error {\n")
	fn, _, _ = strings.Cut(fn, "\treturn nil\n}\n")
	var body strings.Builder
	for _, line := range strings.SplitAfter(fn, "\n") {
		body.WriteString(strings.TrimPrefix(line, "\t"))
	}
	if fn == "" || code != body.String() {
		t.Errorf("README.md's client example is not readmeExample's body:\n--- README.md\n%s--- readmeExample\n%s", code, body.String())
	}
}
