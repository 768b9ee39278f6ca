package gigya

import (
	_ "embed"
	"strconv"
	"strings"
)

// codes.tsv is a copy of the project's shared error table (../shared/spec/error-codes.tsv);
// a test keeps the two identical.
//
//go:embed codes.tsv
var codesTSV string

// CodeInfo is one row of Gigya's error table.
type CodeInfo struct {
	Code         int
	Message      string // the fixed errorMessage
	StatusCode   int    // the statusCode field (and HTTP status with httpStatusCodes=true)
	StatusReason string
	Retired      bool   // only in old lists; Socius never emits it
	Meaning      string // a short explanation, for documentation and tools
}

var codeTable = parseCodes(codesTSV)

func parseCodes(tsv string) map[int]CodeInfo {
	m := make(map[int]CodeInfo)
	for i, line := range strings.Split(tsv, "\n") {
		if i == 0 || strings.TrimSpace(line) == "" {
			continue // header or blank
		}
		f := strings.Split(line, "\t")
		for len(f) < 6 {
			f = append(f, "")
		}
		code, err := strconv.Atoi(f[0])
		if err != nil {
			panic("gigya: bad code in codes.tsv line " + strconv.Itoa(i+1))
		}
		status, err := strconv.Atoi(f[2])
		if err != nil {
			panic("gigya: bad statusCode in codes.tsv line " + strconv.Itoa(i+1))
		}
		m[code] = CodeInfo{Code: code, Message: f[1], StatusCode: status, StatusReason: f[3], Retired: f[4] == "retired", Meaning: f[5]}
	}
	return m
}

// LookupCode returns the table row of code.
func LookupCode(code int) (CodeInfo, bool) {
	c, ok := codeTable[code]
	return c, ok
}

// Codes returns every row of the table.
func Codes() []CodeInfo {
	out := make([]CodeInfo, 0, len(codeTable))
	for _, c := range codeTable {
		out = append(out, c)
	}
	return out
}

// Message returns the fixed errorMessage of code ("" for success or an unknown code).
func Message(code int) string { return codeTable[code].Message }

// StatusCode returns the statusCode of code: the table's value, else errorCode/1000
// (200 for success), which is the rule every observed Gigya answer follows.
func StatusCode(code int) int {
	if c, ok := codeTable[code]; ok {
		return c.StatusCode
	}
	if code == 0 {
		return 200
	}
	return code / 1000
}

// StatusReason returns the HTTP reason phrase of a statusCode.
func StatusReason(status int) string {
	switch status {
	case 200:
		return "OK"
	case 400:
		return "Bad Request"
	case 403:
		return "Forbidden"
	case 500:
		return "Internal Server Error"
	}
	for _, c := range codeTable {
		if c.StatusCode == status {
			return c.StatusReason
		}
	}
	return "Unknown"
}
