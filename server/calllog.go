package server

import (
	"context"
	"log/slog"
	"strings"

	"github.com/socius/socius/gigya"
)

// credentialParams are the parameters whose values are credentials: never logged, and
// blanked wherever a logged text could contain them.
var credentialParams = []string{"secret", "sig", "oauth_token", "client_secret", "access_token", "refresh_token", "sessionSecret"}

// Redacted replaces a credential in logged text.
const Redacted = "[redacted]"

// LogCalls returns an Observe function that writes one line per call to l at info
// level: callId, method, apiKey, userKey, credential (the kind, never its value),
// errorCode, latencyMs, remote, and errorDetails for a failure. Parameter values are
// not logged at all. At debug level a signature mismatch adds the URLs and base strings
// the server signed (what a developer compares with the client's), with the values of
// credential parameters blanked.
func LogCalls(l *slog.Logger) func(*Call) {
	return func(c *Call) {
		ctx := context.Background()
		if !l.Enabled(ctx, slog.LevelInfo) {
			return
		}
		attrs := make([]slog.Attr, 0, 10)
		attrs = append(attrs,
			slog.String("callId", c.ID),
			slog.String("method", clip(c.Method, 100)),
			slog.String("apiKey", c.APIKey))
		if c.UserKey != "" {
			attrs = append(attrs, slog.String("userKey", c.UserKey))
		}
		if c.Credential != "" {
			attrs = append(attrs, slog.String("credential", c.Credential))
		}
		attrs = append(attrs,
			slog.Int("errorCode", c.Code),
			slog.Float64("latencyMs", float64(c.Duration.Microseconds())/1000),
			slog.String("remote", c.RemoteAddr))
		var secrets []string
		if c.Code != 0 {
			secrets = credentialValues(c)
			attrs = append(attrs, slog.String("errorDetails", redact(c.Details, secrets)))
		}
		l.LogAttrs(ctx, slog.LevelInfo, "call", attrs...)

		if len(c.BaseStrings) > 0 && l.Enabled(ctx, slog.LevelDebug) {
			bases := make([]string, len(c.BaseStrings))
			for i, b := range c.BaseStrings {
				bases[i] = redact(b, secrets)
			}
			l.LogAttrs(ctx, slog.LevelDebug, "signature mismatch", slog.String("callId", c.ID),
				slog.Any("signedURLs", c.SignedURLs), slog.Any("baseStrings", bases))
		}
	}
}

// credentialValues returns the values of the call's credential parameters.
func credentialValues(c *Call) []string {
	var out []string
	for _, p := range c.Params {
		if p.Value != "" && known(p.Name, credentialParams) {
			out = append(out, p.Value)
		}
	}
	return out
}

// redact blanks every secret in s: as sent, percent-encoded once (a parameter string)
// and twice (a signature base string).
func redact(s string, secrets []string) string {
	for _, v := range secrets {
		once := gigya.Escape(v)
		for _, form := range []string{gigya.Escape(once), once, v} {
			s = strings.ReplaceAll(s, form, Redacted)
		}
	}
	return s
}
