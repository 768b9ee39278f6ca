package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/socius/socius/gigya"
	"github.com/socius/socius/internal/errtext"
)

// Error is a Gigya error answer: errorCode != 0. It is not tried again (but for a
// 403002, once, see the package documentation): 500001 may mean a write happened. The
// whole answer stays in Response, because error answers can carry data (e.g. a
// 301001's apiDomain). The client returns it as a pointer:
//
//	var e *client.Error
//	if errors.As(err, &e) && e.Code == 403005 { ... }
type Error struct {
	Method     string // the method called, e.g. "socialize.getUserInfo"
	Code       int    // errorCode
	Message    string // errorMessage, fixed per code
	Details    string // errorDetails: what exactly was wrong
	CallID     string // callId: the server's name for the call, for its logs and support
	StatusCode int    // the answer's statusCode field (errorCode / 1000)
	// Response is the whole answer, one JSON object.
	Response []byte
}

// Error says the method, the code, the message and details, and the callId. They are
// the server's text: a character that is not printable (a control character such as a
// line break or an escape, an invalid byte) is written escaped, as \n, \x1b or \u202e,
// so that the error logged or printed in a terminal is one line of what was sent and
// cannot forge log lines or drive the terminal. The fields keep the text as it came.
func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = gigya.Message(e.Code)
	}
	s := fmt.Sprintf("%s: error %d", e.Method, e.Code)
	switch {
	case e.Details != "" && strings.HasPrefix(e.Details, msg):
		s += " " + errtext.Printable(e.Details) // Socius's details start with the message
	case e.Details != "" && msg != "":
		s += " " + errtext.Printable(msg) + ": " + errtext.Printable(e.Details)
	case msg != "" || e.Details != "":
		s += " " + errtext.Printable(msg+e.Details)
	}
	if e.CallID != "" {
		s += " (callId " + errtext.Printable(e.CallID) + ")"
	}
	return s
}

// Decode unmarshals the error answer into v, for the data an error answer carries.
func (e *Error) Decode(v any) error { return jsonUnmarshal(e.Response, v) }

// ResponseError is an answer that is not a Gigya answer: not one JSON object with an
// integer errorCode (a number, or a string of one: "403005" is read as 403005), such
// as an HTML page from a proxy or an empty body; a redirect; or an answer longer than
// MaxResponseBytes. Something answered, so a write may have happened: a call that
// changes something is not tried again, whatever the HTTP status (a 502 or 503 from a
// proxy too); socialize.getUserInfo is, after a 502, 503 or 504 (a proxy's page for a
// server restarting, down or slow), and this is the last attempt's when every one
// gets such a page. The client returns it as a pointer.
type ResponseError struct {
	Method      string // the method called
	HTTPStatus  int    // the HTTP status of the answer
	ContentType string // its Content-Type header
	Body        []byte // the start of the body, at most 2 KiB
	Err         error  // what is wrong with it; wraps gigya.ErrNotAnswer
	// Size is the length of the body in bytes, of which Body is the start; for an
	// answer longer than MaxResponseBytes, MaxResponseBytes+1 (what the client read).
	Size int
}

// Error says what came back instead of an answer.
func (e *ResponseError) Error() string {
	// What is wrong may quote the body (an errorCode that is no integer, as sent).
	return fmt.Sprintf("%s: HTTP %d (%s): %s", e.Method, e.HTTPStatus, errtext.Printable(e.ContentType), errtext.Printable(fmt.Sprint(e.Err)))
}

// Unwrap returns Err, which wraps gigya.ErrNotAnswer.
func (e *ResponseError) Unwrap() error { return e.Err }

// ErrNotSent is what errors.Is finds in the *TransportError of a call that never
// reached the server: no attempt of it got a connection (the dial was refused or timed
// out, the host name did not resolve, the proxy or the TLS handshake failed, or the
// context ended first), but those that the server refused as expired (403002) before
// the client corrected its clock. Such a call did nothing, and may be sent again
// whatever it does. Without it, a call that changes something may have happened (the request went
// out and its answer was lost): check before sending it again.
//
//	if errors.Is(err, client.ErrNotSent) { ... } // safe to try again later
var ErrNotSent = errors.New("client: the request was never sent")

// TransportError is a call that got no answer: the connection failed, timed out, or
// the context ended, before the answer came or part way through it (then Err says
// "the answer (HTTP 200) broke off after N bytes: " before the cause: the server got
// the request). Err is the cause (errors.Is(err, context.DeadlineExceeded)
// works). NeverSent, which errors.Is(err, ErrNotSent) reports, says that no attempt
// reached the server; otherwise a call that changes something may have happened, and
// the client does not send it again (see the package documentation). The client
// returns it as a pointer.
type TransportError struct {
	Method   string // the method called
	URL      string // where it was sent (no secret: parameters go in the body)
	Attempts int    // how many times it was tried, retries included; 0 when its context had ended before the first
	Err      error  // the last attempt's error, with the context's when that ended the call
	// NeverSent is true when no attempt got a connection to the server, or its
	// context had ended before it was sent (but ones refused as expired, 403002):
	// the call certainly did nothing. False says the request may have arrived, and is
	// all that the client can say of a RoundTripper that is not net/http's (given
	// with WithHTTPClient) failing with an error of its own.
	NeverSent bool
}

// Is reports ErrNotSent for a call that never reached the server (NeverSent).
func (e *TransportError) Is(target error) bool { return target == ErrNotSent && e.NeverSent }

// Error says which call failed and why. The URL is said once: net/http's own
// `Post "URL": ` before its cause, which would repeat it, is left out.
func (e *TransportError) Error() string {
	cause := "<nil>"
	if e.Err != nil {
		cause = errtext.WithoutURL(e.Err)
	}
	s := fmt.Sprintf("%s: POST %s: %s", e.Method, e.URL, errtext.Printable(cause))
	if e.Attempts > 1 {
		s += fmt.Sprintf(" (after %d attempts)", e.Attempts)
	}
	return s
}

// Unwrap returns the transport's error.
func (e *TransportError) Unwrap() error { return e.Err }

// ErrorCode returns the Gigya code of a call's error, as the SDKs report failures:
// 0 for nil, the errorCode of an *Error, 504002 (Request Timeout) for a timeout,
// 500000 for any other local failure (the SDKs' general error).
func ErrorCode(err error) int {
	if err == nil {
		return 0
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return 504002
	}
	return 500000
}
