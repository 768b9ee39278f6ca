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
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/socius/socius/client"
	"github.com/socius/socius/internal/errtext"
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
func runCall(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) (err error) {
	fs := newFlagSet("socius call", stdout, stderr)
	defer func() { err = envNamed(fs, err) }() // a refusal of SOCIUS_TIMEOUT's value names it
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

	for _, name := range []string{"url", "api-key", "secret", "user-key", "token", "session-secret", "private-key", "ca-file"} {
		if givenEmpty(fs, name) {
			// "--token $TOKEN" with the variable unset: the call went out signed with
			// SOCIUS_API_KEY and SOCIUS_SECRET instead, as the partner, and answered
			// for a caller the command line did not mean.
			return usageErr("--%s is empty (an unset variable?): give it, or leave --%s out", name, name)
		}
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
			fmt.Fprintf(stderr, "< %s\n", answerShown(rerr))
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

// printAnswer prints a JSON answer indented, its keys in the order received, with
// what is not printable in its strings (U+009B, a terminal's CSI; U+202E, which turns
// the text after it around; DEL; bytes that are not UTF-8) written as JSON escapes
// (\u009b), as control characters already are in valid JSON: the same answer to a JSON
// reader, one that cannot drive the terminal it is printed on. Anything but JSON,
// which the client does not pass as an answer, is printed as errtext.Printable
// writes it.
func printAnswer(w io.Writer, body []byte) {
	var buf bytes.Buffer
	// Trailing white space (a tab, a CR) Indent would keep as it is.
	if err := json.Indent(&buf, bytes.TrimRight(body, " \t\r\n"), "", "  "); err != nil {
		fmt.Fprintln(w, errtext.Printable(string(body)))
		return
	}
	w.Write(append(printableJSON(buf.Bytes()), '\n'))
}

// printableJSON returns js, valid JSON whose only white space outside its strings is
// spaces and line breaks (json.Indent's or json.Marshal's), with what is not printable
// in its strings written as JSON escapes: the same JSON to a reader, one that cannot
// drive the terminal it is printed on. For printAnswer, and for socius emulator log
// --json (encoding/json escapes only the control characters below U+0020).
func printableJSON(js []byte) []byte {
	out := make([]byte, 0, len(js)+1)
	for b := js; len(b) > 0; {
		r, n := utf8.DecodeRune(b)
		switch {
		case r == utf8.RuneError && n == 1:
			// What a JSON decoder reads it as (Go's, jq).
			out = append(out, `\ufffd`...)
		case r == '\n' || strconv.IsPrint(r):
			// Outside strings, Indent writes only line breaks and spaces; inside,
			// valid JSON has no raw control character.
			out = append(out, b[:n]...)
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			out = fmt.Appendf(out, `\u%04x\u%04x`, r1, r2)
		default:
			out = fmt.Appendf(out, `\u%04x`, r)
		}
		b = b[n:]
	}
	return out
}

// verboseBodyShown is how many bytes of an answer that is not a Gigya answer (a
// proxy's page) socius call --verbose shows.
const verboseBodyShown = 1024

// answerShown is the start of an answer that is not a Gigya answer, as --verbose
// shows it: escaped (it may be anything, from anyone between here and the server) and
// clipped, saying how long it was.
func answerShown(rerr *client.ResponseError) string {
	size := rerr.Size
	if size > client.MaxResponseBytes {
		size = -1 // its length is not known: the error says it was longer than that
	}
	return errtext.Clip(rerr.Body, size, verboseBodyShown)
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
		// net/http refuses a control byte in a header, not U+009B or U+202E.
		fmt.Fprintf(w, "< HTTP %d, errorCode %d, %v (Date: %s)\n", tr.HTTPStatus, tr.ErrorCode, tr.Duration.Round(time.Millisecond), errtext.Printable(tr.Date))
	case tr.Err != nil:
		fmt.Fprintf(w, "< no answer after %v: %s\n", tr.Duration.Round(time.Millisecond), errtext.Printable(errtext.WithoutURL(tr.Err)))
	}
	if tr.HTTPStatus != 0 && tr.Err != nil {
		// The client's words for an answer that is not one may quote it as it came.
		fmt.Fprintf(w, "< %s\n", errtext.Printable(tr.Err.Error()))
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
