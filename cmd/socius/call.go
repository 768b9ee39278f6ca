package main

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/socius/socius/client"
)

const callUsage = `usage: socius call [flags] METHOD [NAME=VALUE ...]

Calls one API method with the Go client and prints the JSON answer. Exit status: 0 on
success, 1 when errorCode is not 0 (the answer is printed anyway) or the call fails,
2 on usage errors.

  socius call --api-key 3_... --secret c2Vj... socialize.setUserInfo UID=u1 userInfo='{"firstName":"David"}'

Credentials, one of: --secret (partner secret), --user-key with --secret (the key's
secret), --token (an access token, HTTPS only), --token with --session-secret (a mobile
session, signed with its secret; HTTPS only), --user-key with --private-key (RSA,
Authorization: Bearer JWT; HTTPS only). Signed by default; --https-secret sends the secret in plain
(HTTPS only).

flags:
`

// runCall is `socius call`.
func runCall(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) error {
	fs := newFlagSet("socius call", stdout, stderr)
	baseURL := fs.String("url", "http://127.0.0.1:8080", "where Socius (or Gigya) listens: http(s)://host[:port]")
	apiKey := fs.String("api-key", "", "the site's apiKey")
	secret := fs.String("secret", "", "the partner secret, or the userKey's secret with --user-key")
	userKey := fs.String("user-key", "", "an application/user key of the site")
	token := fs.String("token", "", "an access token from socialize.getToken, or a mobile session's sessionToken with --session-secret (sent as oauth_token; HTTPS only)")
	sessionSecret := fs.String("session-secret", "", "with --token: the mobile session's sessionSecret, which signs the call")
	privateKey := fs.String("private-key", "", "PEM file of the userKey's RSA private key (Authorization: Bearer JWT)")
	httpsSecret := fs.Bool("https-secret", false, "send the secret in plain instead of signing (HTTPS only)")
	caFile := fs.String("ca-file", "", caFileUsage)
	verbose := fs.Bool("verbose", false, "show each request on stderr: parameters (secrets masked), base string, signature")
	timeout := fs.Duration("timeout", client.DefaultTimeout, "give up after this long")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), callUsage)
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args, lookupEnv)
	if err != nil {
		var fe flagError
		if errors.Is(err, flag.ErrHelp) || errors.As(err, &fe) {
			return err // a bad SOCIUS_ variable: said by run
		}
		return errUsage
	}
	// usageErr is a usage error said by run, after "socius: " as every command's.
	usageErr := badFlag
	if len(pos) == 0 {
		fs.Usage()
		return errUsage
	}
	if *timeout <= 0 {
		return usageErr("--timeout %v: want a positive duration", *timeout)
	}
	method := pos[0]
	params := client.Params{}
	for _, a := range pos[1:] {
		name, value, ok := strings.Cut(a, "=")
		if !ok || name == "" {
			return usageErr("parameter %q: want NAME=VALUE", a)
		}
		if _, dup := params[name]; dup {
			return usageErr("parameter %s given twice", name)
		}
		params[name] = value
	}

	var cred client.Credentials
	switch {
	case *token != "":
		if *secret != "" || *userKey != "" || *privateKey != "" {
			return usageErr("--token goes alone: not with --secret, --user-key or --private-key (check SOCIUS_* variables too)")
		}
		cred = client.Token(*token)
		if *sessionSecret != "" {
			cred = client.Session(*token, *sessionSecret)
		}
	case *sessionSecret != "":
		return usageErr("--session-secret goes with --token (the session's sessionToken)")
	case *privateKey != "":
		if *userKey == "" || *apiKey == "" || *secret != "" {
			return usageErr("--private-key needs --user-key and --api-key, and no --secret")
		}
		key, err := readRSAPrivateKey(*privateKey)
		if err != nil {
			return usageErr("%v", fileError("--private-key", *privateKey, err))
		}
		cred = client.UserKeyRSA(*apiKey, *userKey, key)
	case *secret != "":
		if *apiKey == "" {
			return usageErr("--api-key is required with --secret")
		}
		cred = client.PartnerSecret(*apiKey, *secret)
		if *userKey != "" {
			cred = client.UserKey(*apiKey, *userKey, *secret)
		}
	default:
		return usageErr("no credentials: give --secret (with --api-key), --token, or --user-key with --private-key")
	}

	transport, err := trustingTransport(*caFile)
	if err != nil {
		return usageErr("%v", err)
	}
	hc := &http.Client{Transport: transport, Timeout: *timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	opts := []client.Option{client.WithBaseURL(*baseURL), client.WithHTTPClient(hc)}
	if *httpsSecret {
		if *secret == "" {
			return usageErr("--https-secret needs --secret")
		}
		opts = append(opts, client.WithPlainSecret())
	}
	if *verbose {
		opts = append(opts, client.WithTrace(func(tr *client.Trace) { printTrace(stderr, tr) }))
	}
	c, err := client.New(cred, opts...)
	if err != nil {
		return usageErr("%v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	resp, err := c.Call(ctx, method, params)
	var gerr *client.Error
	switch {
	case err == nil:
		printAnswer(stdout, resp.Body)
		return nil
	case errors.As(err, &gerr):
		printAnswer(stdout, gerr.Response)
		return err
	}
	var rerr *client.ResponseError
	var terr *client.TransportError
	switch {
	case errors.As(err, &rerr):
		if *verbose {
			fmt.Fprintf(stderr, "< %s\n", rerr.Body)
		}
	case !errors.As(err, &terr):
		// Nothing was sent: the client refused the method or a parameter.
		return usageErr("%v", err)
	}
	if hint, ok := untrustedCertificate(err, *caFile); ok {
		return fmt.Errorf("%s: %w", hint, err)
	}
	if terr != nil {
		return fmt.Errorf("%w (%s)", err, sentOrNot(terr))
	}
	return err
}

// sentOrNot says whether a call that got no answer may have happened: a write sent
// again after its answer was lost is done twice.
func sentOrNot(terr *client.TransportError) string {
	if terr.NeverSent {
		return "never sent: nothing reached the server"
	}
	return "sent, no answer: it may have taken effect; check before sending it again"
}

// printAnswer prints a JSON answer indented, its keys in the order received.
func printAnswer(w io.Writer, body []byte) {
	var buf bytes.Buffer
	if err := json.Indent(&buf, body, "", "  "); err != nil {
		w.Write(body)
		fmt.Fprintln(w)
		return
	}
	buf.WriteByte('\n')
	w.Write(buf.Bytes())
}

// printTrace shows one attempt of a call, secrets masked by the client.
func printTrace(w io.Writer, tr *client.Trace) {
	fmt.Fprintf(w, "> %s %s  (attempt %d, %s)\n", tr.HTTPMethod, tr.URL, tr.Attempt, tr.Credentials)
	for name, vals := range tr.Header {
		if name == "Authorization" {
			fmt.Fprintf(w, "> %s: %s\n", name, strings.Join(vals, ", "))
		}
	}
	for _, p := range tr.Params {
		fmt.Fprintf(w, ">   %s=%s\n", p.Name, p.Value)
	}
	if tr.BaseString != "" {
		fmt.Fprintf(w, "> normalized URL: %s\n", tr.NormalizedURL)
		fmt.Fprintf(w, "> base string: %s\n", tr.BaseString)
		fmt.Fprintf(w, "> signature: %s\n", tr.Signature)
	}
	switch {
	case tr.HTTPStatus != 0:
		fmt.Fprintf(w, "< HTTP %d, errorCode %d, %v (Date: %s)\n", tr.HTTPStatus, tr.ErrorCode, tr.Duration.Round(time.Millisecond), tr.Date)
	case tr.Err != nil:
		fmt.Fprintf(w, "< no answer after %v: %v\n", tr.Duration.Round(time.Millisecond), tr.Err)
	}
	if tr.HTTPStatus != 0 && tr.Err != nil {
		fmt.Fprintf(w, "< %v\n", tr.Err)
	}
	if tr.Retry != "" {
		fmt.Fprintf(w, "< %s\n", tr.Retry)
	}
}

// readRSAPrivateKey reads a PEM RSA private key file, PKCS #1 or PKCS #8.
func readRSAPrivateKey(path string) (*rsa.PrivateKey, error) {
	b, err := readFileAtMost(path, maxKeyPEM, "it must hold an RSA private key in PEM")
	if err != nil {
		return nil, err
	}
	return parseRSAPrivateKey(b)
}

// parseRSAPrivateKey reads a PEM RSA private key, PKCS #1 or PKCS #8, from the text of
// a file; its errors are its own (the x509 package's name ASN.1 structures).
func parseRSAPrivateKey(b []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("not an RSA private key (PKCS #1 or PKCS #8)")
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an RSA private key")
	}
	return rk, nil
}
