// Package client is a Go client for the Gigya (SAP Customer Data Cloud) REST API,
// and so for Socius, which speaks the same protocol. Gigya ships SDKs for PHP, Java,
// .NET, Python and the mobile platforms, none for Go; this one is built on package
// gigya, the wire protocol that the Socius server uses too, so that the client and the
// server cannot drift apart.
//
//	c, err := client.New(client.PartnerSecret(apiKey, secret),
//		client.WithBaseURL("http://127.0.0.1:8080")) // or client.WithDataCenter("eu1.gigya.com")
//	err = c.SetUserInfo(ctx, "u1", client.UserInfo{FirstName: "David", Age: client.Age(30)})
//	user, err := c.GetUserInfo(ctx, "u1")
//
// # The protocol, in short
//
// A call is a POST of an application/x-www-form-urlencoded body to
// <base>/<namespace>.<method>; with a data center the base is
// https://<namespace>.<dataCenter>, e.g. https://socialize.us1.gigya.com. Every call
// carries format=json, httpStatusCodes=false (so errors come with HTTP 200) and
// sdk=go_<Version>, plus its credentials, in one of five shapes:
//
//   - Signed (the default, fine over plain HTTP): apiKey, with a userKey its userKey,
//     timestamp (Unix seconds), nonce (128 crypto-random bits, fresh for every
//     attempt) and sig = base64(HMAC-SHA1(secret, baseString)), where the base string
//     covers the HTTP method, the normalized URL (gigya.NormalizeURL of the exact URL
//     sent) and every parameter sorted by name (gigya.BaseString, gigya.Sign). The
//     body is sent in that same sorted order.
//   - Plain secret (WithPlainSecret, HTTPS only): apiKey, [userKey] and secret.
//   - Token (Token, HTTPS only): oauth_token only; the token implies the site and the
//     user.
//   - Mobile session (Session, HTTPS only): oauth_token (the sessionToken of a
//     notifyLogin with targetEnv=mobile), timestamp, nonce and sig, signed with the
//     sessionSecret as the mobile SDKs sign; it implies the site and the user.
//   - userKey + RSA key (UserKeyRSA, HTTPS only): apiKey and timestamp, and
//     "Authorization: Bearer <JWT>" (RS256, kid = userKey, iat, jti; gigya.BearerJWT).
//
// Every answer is one JSON object with errorCode (0 on success), callId, statusCode,
// and on errors errorMessage and errorDetails; the method's data is at its top level
// (gigya.DecodeAnswer reads the envelope). A secret or token never goes over plain
// HTTP: New refuses such a configuration with ErrInsecure, and a call over plain HTTP
// fails with it when a parameter of the caller's holds a credential (client_secret,
// password, regToken...; signatures excepted), as socialize.getToken does, whose
// answer is a token, and socialize.notifyLogin with targetEnv=mobile, whose answer is
// a session token and its secret.
//
// # Errors
//
// A Gigya error answer is an *Error carrying Code (errorCode), Message, Details,
// CallID and the whole answer in Response (error answers can carry data). What of the
// server's text an error's message repeats (these fields, a Content-Type, a UID) has
// its control characters and invalid bytes escaped (\n, \x1b), so that a broken or
// hostile server cannot forge log lines or drive a terminal through it:
//
//	var e *client.Error
//	if errors.As(err, &e) && e.Code == 403005 { ... } // Unauthorized user
//
// An answer that is not a Gigya answer (an HTML page from a proxy, say) is a
// *ResponseError, and so is one longer than MaxResponseBytes: the client reads no more
// of it, and the error keeps only its first 2 KiB (Body; Size says how long it was),
// so that an endless answer from a broken or hostile server costs a bounded amount of
// memory. No answer at all
// (connection refused, timeout, context ended) is a *TransportError wrapping the
// cause, and so is an answer that breaks off part way, which its error says, with
// the HTTP status and how many bytes came; errors.Is(err, ErrNotSent) says that the request never reached the server
// (no connection was made: refused, DNS, proxy, TLS handshake), so that even a write
// may be sent again; without it, the request may have arrived and its answer been
// lost. ErrorCode maps any of them to a code the way the SDKs do (504002 for
// timeouts, 500000 for other local failures). No error, printed in any verb, shows a
// secret or a token; nor do Credentials, a Client, or the answers that carry one (a
// Login prints whether its session token, secret and cookie value are set, a
// TokenGrant whether its token is; read the fields themselves to use them).
//
// # Clock skew and retries
//
// A signed request whose timestamp is more than about two minutes from the server's
// clock is refused with 403002 (Request has expired). The client then sets its clock
// offset from the answer's Date header and sends the call once more, with a fresh
// timestamp, a fresh nonce and a fresh signature (the Java SDK re-sends the identical
// request, which can only fail again). The offset stays for later calls (ClockOffset).
// A 403002 without a Date header that is an HTTP date is returned as it is, after one
// request: there is no server time to correct the clock with (the answer's time field
// is not read for it), and the same request would only expire again. So is one whose
// Date is before 1970 (no Unix timestamp is) or further from the client's clock than
// the 292 years a time.Duration holds: no clock a server checks timestamps with.
// Every other answer's Date sets it too when the clocks are more than a second apart,
// as the Java and .NET SDKs follow the server's clock: a client that sends no timestamp
// (a plain secret, a token) checks UIDSignatures against the server's time all the
// same. The answer's time field never sets it (Response.Time reports it, zero when it
// is not RFC 3339 within the years 0000-9999): Date is what the SDKs read.
//
// The offset has no other bound: a server's clock, however far off, is the one it
// checks timestamps and signs UIDSignatures with, and a client clock off by months is
// corrected. So the server sets it: over plain HTTP, whoever is on the path can, and
// with it how old a UIDSignature Client.ValidateUIDSignature (and GetUserInfo) takes.
// Where that matters, call over HTTPS, or check with the package function
// ValidateUIDSignature, which reads the system clock.
//
// After a connection error the client tries again (up to WithRetries times, default
// DefaultRetries, after a pause of 0.1 s, 0.4 s, 0.9 s... growing as the square of the
// failures up to 5 s), each time with a fresh nonce and signature, but only when that
// is safe:
//
//   - when the request certainly never reached the server: the connection could not
//     be made (refused, unreachable, DNS, proxy or TLS handshake failure; ErrNotSent),
//     whatever the method;
//   - for methods that change nothing (socialize.getUserInfo), after any transport
//     failure, since a repeated read answers the same, and after a proxy's or load
//     balancer's HTTP 502, 503 or 504 page (a *ResponseError: its server restarting,
//     down or slow), as after a lost connection.
//
// A host name that does not exist (a misspelt data center), a certificate the client
// does not trust, or a server that does not speak TLS (an https URL on a plain HTTP
// port), is not retried: no second attempt mends it.
//
// A call that changes something (setUserInfo, notifyLogin, getToken, deleteAccount,
// logout, any other method given to Call) is never sent twice once it may have reached
// the server: a lost answer is returned as a *TransportError, and the caller decides.
// Gigya error answers are never retried (besides the 403002 above): 500001 may mean the
// write happened. Every wait honours the context; a context deadline or cancellation
// ends the call at once, and the default HTTP client gives up after DefaultTimeout
// (its error says so: "context deadline exceeded: the call took longer than
// client.DefaultTimeout (30s)"). A call that ends while it waits to try again returns
// a *TransportError wrapping both the context's error and the last attempt's
// (errors.Is finds either).
//
// # Signatures in your own code
//
// UIDSignature, ValidateUIDSignature, FriendSignature,
// ValidateFriendshipSignature and RequestSignature expose the signature algorithms
// (from package gigya) for code that checks what Gigya signed. GetUserInfo validates
// the UIDSignature of its answer itself when the client knows the partner secret.
package client
