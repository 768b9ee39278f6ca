package gigya

import (
	"runtime"
	"strings"
	"testing"
)

func TestParseJSONLenient(t *testing.T) {
	tests := []struct {
		in   string
		want string // re-encoded
	}{
		{`{"firstName":"David","gender":"m","age":30}`, `{"firstName":"David","gender":"m","age":30}`},
		{` { "firstName" : "David" , "age" : 30 } `, `{"firstName":"David","age":30}`},
		{`{ firstName: "David", gender: "m", age:30 }`, `{"firstName":"David","gender":"m","age":30}`},
		{`{'nickname':'it\'s'}`, `{"nickname":"it's"}`},
		{`{"photoURL":"http:\/\/x\/y"}`, `{"photoURL":"http://x/y"}`},
		{`{"firstName":"D\u00e1vid"}`, `{"firstName":"Dávid"}`},
		{`{"n":"\ud83c\udf89"}`, `{"n":"🎉"}`},
		{`{"n":"\ud83c"}`, `{"n":"\ufffd"}`},
		{`{"a":null,"b":true,"c":false,"d":-1.5e3,"e":[1,"x",{}],}`, `{"a":null,"b":true,"c":false,"d":-1.5e3,"e":[1,"x",{}]}`},
		{`[1,2,]`, `[1,2]`},
		{`"text"`, `"text"`},
		// A byte order mark before the text (a file saved by a Windows editor).
		{"\ufeff" + `{"firstName":"David"}`, `{"firstName":"David"}`},
		{"\ufeff" + ` {a:1}`, `{"a":1}`},
		{`{"n":"` + "\ufeff" + `x"}`, `{"n":"` + "\ufeff" + `x"}`}, // inside a string: text
	}
	for _, tt := range tests {
		v, err := ParseJSON(tt.in)
		if err != nil {
			t.Errorf("ParseJSON(%s): %v", tt.in, err)
			continue
		}
		if got := string(AppendJSON(nil, v)); got != tt.want {
			t.Errorf("ParseJSON(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestParseJSONErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{``, "unexpected end of text"},
		{`{`, "unexpected end of text"},
		{`{"a" 1}`, `':' was expected after key "a"`},
		// A key that could be a token or a secret is quoted masked, as a name is, and
		// a long one clipped: the error is an answer's errorDetails, logged.
		{`{"st2.at.3blCmFpXfyEP4dMGRNzHBuN5jyQoFn_O4LcjBEPI3SY" 1}`, `':' was expected after key "st2.at.3blC..."`},
		{`{"` + strings.Repeat("a.", 1000) + `" 1}`, `':' was expected after key "` + strings.Repeat("a.", 50) + `..."`},
		{`{"a":1 "b":2}`, "',' or '}' was expected"},
		{`{"a":"x`, "unterminated string"},
		{`{"a":"\x"}`, "unknown escape"},
		{`{"a":01x}`, "',' or '}' was expected"},
		{`{"a":1} x`, "after the value"},
		{`{"a":"line` + "\n" + `"}`, "control character"},
		{`{"a":-}`, "bad number"},
		{`{"a":tru}`, "a value was expected"},
		// A byte order mark only before the text, once.
		{"\ufeff\ufeff{}", `at offset 3: unexpected '\ufeff', a value was expected`},
		{" \ufeff{}", `at offset 1: unexpected '\ufeff', a value was expected`},
		{"{}\ufeff", `at offset 2: unexpected '\ufeff' after the value`},
		{"\ufeff", "at offset 3: unexpected end of text"},
		{strings.Repeat("[", MaxJSONDepth+1) + strings.Repeat("]", MaxJSONDepth+1), "nested deeper"},
		{strings.Repeat(`{"a":`, MaxJSONDepth+1) + "1" + strings.Repeat("}", MaxJSONDepth+1), "nested deeper"},
	}
	for _, tt := range tests {
		_, err := ParseJSON(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseJSON(%.40q) = %v, want an error with %q", tt.in, err, tt.want)
		}
	}
	// Exactly MaxJSONDepth levels are fine.
	ok := strings.Repeat("[", MaxJSONDepth) + strings.Repeat("]", MaxJSONDepth)
	if _, err := ParseJSON(ok); err != nil {
		t.Errorf("depth %d: %v", MaxJSONDepth, err)
	}
	// MaxJSONValues values are fine (the array and its elements), one more is not.
	values := func(n int) string { return "[" + strings.TrimSuffix(strings.Repeat("[],", n-1), ",") + "]" }
	if _, err := ParseJSON(values(MaxJSONValues)); err != nil {
		t.Errorf("%d values: %v", MaxJSONValues, err)
	}
	if _, err := ParseJSON(values(MaxJSONValues + 1)); err == nil || !strings.Contains(err.Error(), "more than 10000 values") {
		t.Errorf("%d values: %v", MaxJSONValues+1, err)
	}
}

// TestParseJSONMemory: a megabyte of small values is refused before it becomes tens of
// megabytes of tree.
func TestParseJSONMemory(t *testing.T) {
	text := `{"a":[` + strings.TrimSuffix(strings.Repeat("[],", 350_000), ",") + `]}`
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, err := ParseJSON(text); err == nil {
		t.Fatal("a megabyte of empty arrays parsed")
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<20 {
		t.Errorf("refusing %d bytes of JSON allocated %d MiB", len(text), grew>>20)
	}
}

func FuzzParseJSON(f *testing.F) {
	for _, s := range []string{`{"firstName":"David","age":30}`, `{a:1}`, `[[[[]]]]`, `"\ud83c\udf89"`, `{'a':'b',}`, `-0.5e-3`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseJSON(s)
		if err != nil {
			return
		}
		// Whatever parses re-encodes to strict JSON that parses to the same text again.
		enc := AppendJSON(nil, v)
		v2, err := ParseJSON(string(enc))
		if err != nil {
			t.Fatalf("re-encoded %s does not parse: %v", enc, err)
		}
		if enc2 := AppendJSON(nil, v2); string(enc2) != string(enc) {
			t.Fatalf("not stable: %s then %s", enc, enc2)
		}
	})
}
