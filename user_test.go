package socius

import "testing"

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
