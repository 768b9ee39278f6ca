package server

import (
	"context"
	"log/slog"
)

// maxLoggedDetails is the most of an errorDetails that a call's line keeps: details
// may quote what the request sent.
const maxLoggedDetails = 2048

// LogCalls returns an Observe function that writes one line per call to l at info
// level: callId, method, apiKey, userKey, credential (the kind, never its value),
// errorCode, latencyMs, remote (the client's address, Call.ClientAddr), peer (the
// connection's, when trusted proxies named another client), errorDetails for a failure
// (cut at 2 KiB), and limit=auth-failures for a call refused by the limit on failed authentications.
// Parameter values are not logged at all. At debug level a signature mismatch adds the
// URLs and base strings the server signed (what a developer compares with the
// client's); the server built them with credential values masked, as it masks every
// credential Observe sees.
func LogCalls(l *slog.Logger) func(*Call) {
	return func(c *Call) {
		ctx := context.Background()
		if !l.Enabled(ctx, slog.LevelInfo) {
			return
		}
		attrs := make([]slog.Attr, 0, 11)
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
			slog.String("remote", c.ClientAddr()))
		if _, ok := c.forwardedClient(); ok {
			// The client came through trusted proxies: the nearest is the peer.
			attrs = append(attrs, slog.String("peer", c.RemoteAddr))
		}
		if c.Code != 0 {
			attrs = append(attrs, slog.String("errorDetails", clip(c.Details, maxLoggedDetails)))
		}
		if c.AuthFailureLimited {
			// Which limit refused the call, in a field a log query can select on.
			attrs = append(attrs, slog.String("limit", "auth-failures"))
		}
		l.LogAttrs(ctx, slog.LevelInfo, "call", attrs...)

		if len(c.BaseStrings) > 0 && l.Enabled(ctx, slog.LevelDebug) {
			l.LogAttrs(ctx, slog.LevelDebug, "signature mismatch", slog.String("callId", c.ID),
				slog.Any("signedURLs", c.SignedURLs), slog.Any("baseStrings", c.BaseStrings))
		}
	}
}
