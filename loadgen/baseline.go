package loadgen

import (
	"net/http"
	"time"
)

// baselineAnswer is a success envelope of socialize.setUserInfo as Socius sends it:
// the same fields, the same size.
const baselineAnswer = `{"callId":"8d1f0c2a9b7e4f6a8c3d5e7f9a1b2c3d","errorCode":0,"apiVersion":2,` +
	`"statusCode":200,"statusReason":"OK","time":"2026-01-01T00:00:00.000Z"}`

// BaselineHandler is the yardstick a bench measures Socius against: the least an HTTP
// server in Go does to answer a socialize call. It reads and parses the form body
// (r.ParseForm) and answers a fixed JSON envelope with Socius's headers; it checks no
// signature and touches no store.
func BaselineHandler() http.Handler {
	body := []byte(baselineAnswer)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/json; charset=utf-8")
		h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		w.Write(body)
	})
}
