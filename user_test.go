package socius

import (
	"strings"
	"testing"
)

// TestParseField: wire names match exactly or in another ASCII case, never through
// Unicode case folding.
func TestParseField(t *testing.T) {
	for _, tt := range []struct {
		name string
		want Field
		ok   bool
	}{
		{"nickname", Nickname, true},
		{"NickName", Nickname, true},
		{"PHOTOURL", PhotoURL, true},
		{"nic\u212Aname", 0, false}, // KELVIN SIGN folds to k in Unicode
		{"firſtName", 0, false},     // LATIN SMALL LETTER LONG S folds to s
		{"nick", 0, false},
		{"", 0, false},
	} {
		got, ok := ParseField(tt.name)
		if ok != tt.ok || ok && got != tt.want {
			t.Errorf("ParseField(%q) = %v, %v; want %v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

func TestEqualFoldASCII(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want bool
	}{
		{"sig", "SIG", true},
		{"sig", "Sig", true},
		{"sig", "sig", true},
		{"sig", "si", false},
		{"k", "\u212A", false},
		{"@", "`", false}, // 0x40 and 0x60: not letters
		{"[", "{", false},
	} {
		if got := EqualFoldASCII(tt.a, tt.b); got != tt.want {
			t.Errorf("EqualFoldASCII(%q, %q) = %v", tt.a, tt.b, got)
		}
	}
}

func TestAgeWholeNumbers(t *testing.T) {
	good := map[string]string{
		"30": "30", "+30": "30", " 30 ": "30", "030": "30", "30.0": "30", "30.": "30",
		"3e1": "30", "3E+1": "30", "3.00E1": "30", "300e-1": "30", "0": "0", "-0": "0",
		"0.0": "0", "0e5": "0", "150": "150", "1.5e2": "150", "15e1": "150",
		"0.0e999999999999": "0", "-0e-99999": "0", // zero, whatever its exponent
	}
	for in, want := range good {
		if got, err := Age.Validate(in); err != nil || got != want {
			t.Errorf("Age.Validate(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{
		"30.5", "30.000001", "0.5", ".5", ".", "", "-1", "151", "1.51e2", "1e400", "1e-400",
		"1e", "1e+", "3_0", "0x1e", "30abc", "1e00001", "1e99999", "0e", "0e+x", "NaN", "Infinity", "--1", "9999999999999999999999",
	} {
		if got, err := Age.Validate(in); err == nil {
			t.Errorf("Age.Validate(%q) = %q, nil; want an error", in, got)
		}
	}
}

func TestValidateUID(t *testing.T) {
	for _, ok := range []string{"u", "a b", " ", "~!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}", strings.Repeat("u", MaxUIDLen)} {
		if err := ValidateUID(ok); err != nil {
			t.Errorf("ValidateUID(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a\tb", "a\x00", "\x7f", "ü", strings.Repeat("u", MaxUIDLen+1)} {
		if err := ValidateUID(bad); err == nil {
			t.Errorf("ValidateUID(%q) accepted", bad)
		}
	}
}

func TestGender(t *testing.T) {
	for _, v := range []string{"m", "f", "u"} {
		if got, err := Gender.Validate(v); err != nil || got != v {
			t.Errorf("Gender.Validate(%q) = %q, %v", v, got, err)
		}
	}
	for _, v := range []string{"M", "x", "male", "mf"} {
		if _, err := Gender.Validate(v); err == nil {
			t.Errorf("Gender.Validate(%q) accepted", v)
		}
	}
}
