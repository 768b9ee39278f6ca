// Package vectors loads the shared evidence that tests check Socius against: the
// signature vectors computed by the real Gigya SDKs (test-vectors.json), the raw
// requests the SDKs sent (captures/*.jsonl) and the error table, from the team's
// ../shared/spec folder beside the checkout, or, in a checkout without it, from the
// copy in testdata/spec (which TestCopyIsCurrent keeps equal to the shared folder
// wherever both are there).
package vectors

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// SpecDir returns the folder of the evidence: ../shared/spec, found by walking up from
// the working directory (tests run in their package's folder), else this package's
// copy, testdata/spec.
func SpecDir() (string, error) {
	if dir, err := SharedSpecDir(); err == nil {
		return dir, nil
	}
	return CopyDir()
}

// SharedSpecDir finds the team's ../shared/spec above the working directory.
func SharedSpecDir() (string, error) {
	start, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := start; ; {
		cand := filepath.Join(dir, "..", "shared", "spec")
		if st, err := os.Stat(filepath.Join(cand, "SPEC.md")); err == nil && !st.IsDir() {
			return filepath.Clean(cand), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("vectors: no ../shared/spec beside " + start + " or any folder above it")
		}
		dir = parent
	}
}

// CopyDir returns testdata/spec of this package's source folder: the copy of the
// evidence that a checkout carries.
func CopyDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("vectors: cannot locate the package's source folder")
	}
	dir := filepath.Join(filepath.Dir(file), "testdata", "spec")
	if _, err := os.Stat(filepath.Join(dir, "test-vectors.json")); err != nil {
		return "", fmt.Errorf("vectors: no copy of the evidence: %w", err)
	}
	return dir, nil
}

// File is test-vectors.json.
type File struct {
	RequestSignatureVectors []RequestVector  `json:"request_signature_vectors"`
	UIDSignatureVectors     []UIDVector      `json:"uid_signature_vectors"`
	CapturedWireRequests    []CapturedVector `json:"captured_wire_requests"`
	// NodeFalsy is the gigya npm package's base string for values 0 and false, which
	// it signs as empty and sends as "0" and "false".
	NodeFalsy struct {
		Params     map[string]any `json:"params"`
		BaseString string         `json:"base_string"`
	} `json:"node_falsy_value_quirk"`
}

// RequestVector is one request-signature vector.
type RequestVector struct {
	ID                 string                     `json:"id"`
	HTTPMethod         string                     `json:"http_method"`
	URL                string                     `json:"url"`
	NormalizedURL      string                     `json:"normalized_url"`
	Params             [][2]string                `json:"params"`
	Secret             string                     `json:"secret"`
	ExpectedBaseString string                     `json:"expected_base_string"`
	ExpectedSig        string                     `json:"expected_sig"`
	Disagreements      map[string]json.RawMessage `json:"disagreements"`
	WireBodies         map[string]string          `json:"wire_bodies"`
}

// UIDVector is one UIDSignature or friendshipSignature vector.
type UIDVector struct {
	ID                 string `json:"id"`
	Kind               string `json:"kind"`
	UID                string `json:"UID"`
	FriendUID          string `json:"friendUID"`
	Timestamp          string `json:"timestamp"`
	Secret             string `json:"secret"`
	ExpectedBaseString string `json:"expected_base_string"`
	ExpectedSig        string `json:"expected_sig"`
}

// CapturedVector is one request recorded from a real SDK.
type CapturedVector struct {
	SDK          string `json:"sdk"`
	AuthMode     string `json:"auth_mode"`
	SchemeOnWire string `json:"scheme_on_wire"`
	RequestLine  string `json:"request_line"`
	HostHeader   string `json:"host_header"`
	ContentType  string `json:"content_type"`
	Body         string `json:"body"`
	SecretUsed   string `json:"secret_used"`
	Expected     string `json:"expected"`
}

// Load reads test-vectors.json.
func Load() (*File, error) {
	dir, err := SpecDir()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, "test-vectors.json"))
	if err != nil {
		return nil, err
	}
	var f File
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, err
	}
	return &f, nil
}

// Capture is one raw request from captures/*.jsonl.
type Capture struct {
	File       string      `json:"-"`
	Line       int         `json:"-"`
	ReceivedAt string      `json:"received_at"`
	Listener   string      `json:"listener"` // http or https
	Method     string      `json:"method"`
	Target     string      `json:"request_target"`
	Path       string      `json:"path"`
	Query      string      `json:"query"`
	Headers    [][2]string `json:"headers"`
	Body       string      `json:"body"`
}

// Header returns the first header with the name, case-insensitively.
func (c *Capture) Header(name string) string {
	for _, h := range c.Headers {
		if strings.EqualFold(h[0], name) {
			return h[1]
		}
	}
	return ""
}

// Host is the host the request was sent to: the absolute-form target's host, else the
// Host header (what Go's net/http also uses).
func (c *Capture) Host() string {
	if i := strings.Index(c.Target, "://"); i >= 0 {
		rest := c.Target[i+3:]
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			return rest[:j]
		}
		return rest
	}
	return c.Header("Host")
}

// Captures reads every captures/*.jsonl file whose name matches the glob pattern
// (e.g. "*-sdk.jsonl"), in name order.
func Captures(pattern string) ([]Capture, error) {
	dir, err := SpecDir()
	if err != nil {
		return nil, err
	}
	files, err := filepath.Glob(filepath.Join(dir, "captures", pattern))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []Capture
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		line := 0
		for sc.Scan() {
			line++
			if strings.TrimSpace(sc.Text()) == "" {
				continue
			}
			var c Capture
			if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
				f.Close()
				return nil, err
			}
			c.File, c.Line = filepath.Base(name), line
			out = append(out, c)
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Lab credentials used by every capture and vector (made up).
const (
	LabAPIKey        = "3_LabApiKey_AbC-123"
	LabPartnerSecret = "c2VjcmV0LWZvci10aGUtZ2lneWEtbGFiLTEyMzQ1Ng=="
	LabUserKey       = "AUserKeyLab1"
	LabUserSecret    = "dXNlci1zZWNyZXQtZm9yLWxhYg=="
)
