package gigya

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// An Answer is the envelope of an answer as a client reads it: the fields every answer
// carries. The method's data stays in the body, at the top level beside them.
type Answer struct {
	CallID       string
	Code         int // errorCode: 0 on success
	Message      string
	Details      string
	StatusCode   int
	StatusReason string
	APIVersion   int
	Time         time.Time // zero when absent or unreadable: not RFC 3339, or outside the years 0000-9999 in UTC
	Ignored      []IgnoredParam
}

// ErrNotAnswer is wrapped by every error of [DecodeAnswer]: the body is not a Gigya
// answer (an HTML error page from a proxy, an empty body, JSON without errorCode, ...).
var ErrNotAnswer = errors.New("not a Gigya answer")

// wireAnswer is the JSON shape of the envelope fields.
type wireAnswer struct {
	CallID       string          `json:"callId"`
	ErrorCode    json.RawMessage `json:"errorCode"`
	ErrorMessage string          `json:"errorMessage"`
	ErrorDetails string          `json:"errorDetails"`
	StatusCode   json.RawMessage `json:"statusCode"`
	StatusReason string          `json:"statusReason"`
	APIVersion   json.RawMessage `json:"apiVersion"`
	Time         string          `json:"time"`
	Ignored      []struct {
		ParamName   string          `json:"paramName"`
		WarningCode json.RawMessage `json:"warningCode"`
		Message     string          `json:"message"`
	} `json:"ignoredParams"`
}

// DecodeAnswer reads the envelope of a JSON answer. The body must be one JSON object
// (its first byte '{', as the Java and .NET SDKs require) with a numeric errorCode (the
// Node package treats a missing one as an error, and so does this). Other fields are
// read leniently: a missing or odd statusCode, time or ignoredParams is left zero.
func DecodeAnswer(body []byte) (*Answer, error) {
	if len(body) == 0 {
		return nil, fmt.Errorf("%w: empty body", ErrNotAnswer)
	}
	if body[0] != '{' {
		return nil, fmt.Errorf("%w: the body does not start with '{' (starts with %q)", ErrNotAnswer, clip(string(body), 16))
	}
	var w wireAnswer
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("%w: invalid JSON: %v", ErrNotAnswer, err)
	}
	code, ok := jsonInt(w.ErrorCode)
	if !ok {
		if len(w.ErrorCode) == 0 {
			return nil, fmt.Errorf("%w: no errorCode", ErrNotAnswer)
		}
		return nil, fmt.Errorf("%w: errorCode %s is not an integer", ErrNotAnswer, clip(string(w.ErrorCode), 20))
	}
	a := &Answer{CallID: w.CallID, Code: code, Message: w.ErrorMessage, Details: w.ErrorDetails, StatusReason: w.StatusReason}
	a.StatusCode, _ = jsonInt(w.StatusCode)
	a.APIVersion, _ = jsonInt(w.APIVersion)
	a.Time, _ = answerTime(w.Time)
	for _, p := range w.Ignored {
		wc, _ := jsonInt(p.WarningCode)
		a.Ignored = append(a.Ignored, IgnoredParam{Name: p.ParamName, WarningCode: wc, Message: p.Message})
	}
	return a, nil
}

// answerTime reads an answer's time: RFC 3339 (the server writes UTC with
// milliseconds), within the years 0000 to 9999 in UTC, which is what RFC 3339 and
// time.Time's MarshalJSON can write. time.Parse also takes a ',' before the fraction,
// offsets of 24 hours or more and an offset's minute 60 ("+00:60", read as +01:00),
// none of them RFC 3339, and an offset that moves 9999-12-31 into the year 10000: an
// answer from a broken or hostile server, whose time a caller could not even encode
// again. Its false is a time to ignore, as one absent: an answer is still an answer
// without it.
func answerTime(s string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || len(s) > len("2006-01-02T15:04:05") && s[len("2006-01-02T15:04:05")] == ',' {
		return time.Time{}, false
	}
	// Parsed, s ends in 'Z' or in an offset "+hh:mm" or "-hh:mm", two digits each.
	if n := len(s); (s[n-6] == '+' || s[n-6] == '-') && s[n-2:] >= "60" {
		return time.Time{}, false
	}
	if _, offset := t.Zone(); offset <= -24*60*60 || offset >= 24*60*60 {
		return time.Time{}, false
	}
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return time.Time{}, false
	}
	return t, true
}

// DecodeXMLAnswer reads the top-level fields of an XML answer (see [AppendXML]) as
// text: for each child element of the root, its own text (not that of elements nested
// in it; a name that appears twice keeps its last text). The body must be a
// well-formed document whose root is a <method>Response element in [XMLNamespace],
// with an integer errorCode field. Errors wrap [ErrNotAnswer].
func DecodeXMLAnswer(body []byte) (map[string]string, error) {
	d := xml.NewDecoder(bytes.NewReader(body))
	fields := map[string]string{}
	depth, name := 0, ""
	var text strings.Builder
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: invalid XML: %v", ErrNotAnswer, err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 1 && (tok.Name.Space != XMLNamespace || !strings.HasSuffix(tok.Name.Local, "Response")) {
				return nil, fmt.Errorf("%w: root element %v", ErrNotAnswer, tok.Name)
			}
			if depth == 2 {
				name = tok.Name.Local
				text.Reset()
			}
		case xml.CharData:
			if depth == 2 {
				text.Write(tok)
			}
		case xml.EndElement:
			if depth == 2 {
				fields[name] = text.String()
			}
			depth--
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("%w: incomplete document", ErrNotAnswer)
	}
	code, ok := fields["errorCode"]
	if !ok {
		return nil, fmt.Errorf("%w: no errorCode", ErrNotAnswer)
	}
	if _, err := strconv.Atoi(code); err != nil {
		return nil, fmt.Errorf("%w: errorCode %s is not an integer", ErrNotAnswer, clip(code, 20))
	}
	return fields, nil
}

// jsonInt reads a JSON integer, or a string holding one (lenient, for fields other
// implementations might quote).
func jsonInt(raw json.RawMessage) (int, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' {
		raw = raw[1 : len(raw)-1]
	}
	n, err := strconv.Atoi(string(raw))
	return n, err == nil
}
