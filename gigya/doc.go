// Package gigya is the Gigya socialize REST protocol, without I/O: what the Socius
// server and the Socius Go client both speak, so that the two cannot drift apart.
//
// # Requests
//
// A call is GET or POST to /<namespace>.<method> (e.g. /socialize.setUserInfo) on any
// host. Its parameters are the query string and an application/x-www-form-urlencoded
// body, merged ([Params.Decode]). Names match case-insensitively; a name sent twice,
// in any letter case, is refused with 400006. JSON-typed parameters (userInfo,
// x_userInfo, context) carry JSON text in one field and are read leniently
// ([ParseJSON]); booleans accept true/True/1 and false/False/0/empty ([ParseBool]);
// integers are decimal digits, a "-" only where a negative value means something, no
// "+" ([ParseInteger]).
// A client writes its body with [AppendForm], its parameters in [SortParams] order: the
// order, and the percent-encoding, of the base string it signs.
//
// # Signatures
//
// A signed request carries apiKey (and optionally userKey), timestamp, nonce and sig.
// The signature is
//
//	sig = base64(HMAC-SHA1(base64decode(secret), baseString))
//	baseString = METHOD & escape(normalizedURL) & escape(parameterString)
//
// where escape keeps A-Z a-z 0-9 - . _ ~ and writes every other UTF-8 byte as %XX
// (upper-case hex), the normalized URL is the lower-cased scheme and host, the port only
// when not the scheme's default, and the path as sent ([NormalizeURL]), and the
// parameter string is every parameter but sig, sorted by name in byte order, as
// name=escape(value) joined by '&' ([ParamString]); it is escaped a second time inside
// the base string. The secret is the userKey's when a userKey is sent, else the site's
// partner secret. [Sign] and [Verify] are both built on the same base-string code.
// A userKey with an RSA key signs no request: it sends "Authorization: Bearer <JWT>"
// instead ([BearerJWT]).
//
// A server cannot know exactly which URL the client signed: a TLS terminator changes
// the scheme, and the .NET SDK never signs the port. [CandidateURLs] lists the URLs
// worth trying; [Verify] compares against each in constant time. Timestamps are Unix
// seconds, or milliseconds when above 10^11 (the gigya npm package), see
// [ParseTimestamp].
//
// A UID that the server returns can be proven with UIDSignature =
// base64(HMAC-SHA1(partnerSecret, signatureTimestamp + "_" + UID)), see
// [UIDSignature] and [ValidateUIDSignature].
//
// # Answers
//
// Every answer is one object ([Envelope]): callId, errorCode, on errors errorDetails
// and errorMessage, apiVersion (2), statusCode (errorCode/1000, 200 on success),
// statusReason, time (UTC, ISO 8601 with milliseconds), the echoed context, the
// ignoredParams warnings, and the method's data at the top level. It is rendered as
// JSON, as JSONP (callback(...);) or as legacy XML ([Encode]); a client reads it back
// with [DecodeAnswer]. The error table, messages and status codes, is Gigya's
// ([LookupCode]).
package gigya
