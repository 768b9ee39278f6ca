package socius

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// A Field is one of the eight profile fields that socialize.setUserInfo writes.
type Field uint8

// The profile fields, in the order Gigya documents them.
const (
	Nickname Field = iota
	PhotoURL
	ThumbnailURL
	FirstName
	LastName
	Gender
	Age
	Email
	NumFields
)

var fieldNames = [NumFields]string{"nickname", "photoURL", "thumbnailURL", "firstName", "lastName", "gender", "age", "email"}

// Name is the field's name on the wire, e.g. "photoURL".
func (f Field) Name() string { return fieldNames[f] }

// Fields lists every profile field in order.
func Fields() []Field {
	fs := make([]Field, NumFields)
	for i := range fs {
		fs[i] = Field(i)
	}
	return fs
}

// ParseField finds a field by its wire name. An exact match is preferred; otherwise the
// name matches case-insensitively, as Gigya matches parameter names.
func ParseField(name string) (Field, bool) {
	for i, n := range fieldNames {
		if n == name {
			return Field(i), true
		}
	}
	for i, n := range fieldNames {
		if EqualFoldASCII(n, name) {
			return Field(i), true
		}
	}
	return 0, false
}

// EqualFoldASCII reports whether a and b are equal but for the case of ASCII letters,
// as Gigya matches names (no Unicode folding: the Kelvin sign is not a k). Either may
// be bytes, so that a header read into a buffer is compared without a copy.
func EqualFoldASCII[A, B string | []byte](a A, b B) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// Limits on profile values, in characters.
const (
	MaxTextLen = 1000
	MaxURLLen  = 2048
	MaxAge     = 150
)

// IsURL reports whether the field holds a URL (and so has the longer limit).
func (f Field) IsURL() bool { return f == PhotoURL || f == ThumbnailURL }

// Validate checks a non-empty value for the field and returns it normalized (an age
// becomes its decimal form). The error text names the field and says what is wrong.
func (f Field) Validate(v string) (string, error) {
	if !utf8.ValidString(v) {
		return "", fmt.Errorf("%s is not valid UTF-8", f.Name())
	}
	if strings.IndexByte(v, 0) >= 0 {
		return "", fmt.Errorf("%s contains a NUL character", f.Name())
	}
	n := utf8.RuneCountInString(v)
	switch {
	case f.IsURL() && n > MaxURLLen:
		return "", fmt.Errorf("%s is longer than %d characters", f.Name(), MaxURLLen)
	case !f.IsURL() && n > MaxTextLen:
		return "", fmt.Errorf("%s is longer than %d characters", f.Name(), MaxTextLen)
	}
	switch f {
	case Gender:
		if v != "m" && v != "f" && v != "u" {
			return "", fmt.Errorf("gender must be one of m, f, u")
		}
	case Age:
		a, ok := wholeNumber(strings.TrimSpace(v))
		if !ok || a < 0 || a > MaxAge {
			return "", fmt.Errorf("age must be an integer from 0 to %d", MaxAge)
		}
		return strconv.Itoa(a), nil
	}
	return v, nil
}

// wholeNumber reads a decimal number whose value is a whole number, as JSON and the
// SDKs write it: "30", "+30", "30.0", "3e1", "3.00E+1" (Python's json.dumps writes an
// age kept as a float as 30.0). It is exact: "30.000001" is no whole number, however
// close. Values beyond six digits read as not whole, which no range check wants anyway.
func wholeNumber(s string) (int, bool) {
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg, s = s[0] == '-', s[1:]
	}
	mant, exp := s, ""
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant, exp = s[:i], s[i+1:]
		if exp == "" {
			return 0, false
		}
	}
	intPart, frac := mant, ""
	if i := strings.IndexByte(mant, '.'); i >= 0 {
		intPart, frac = mant[:i], mant[i+1:]
	}
	digits := intPart + frac
	if digits == "" || !allDigits(digits) {
		return 0, false
	}
	shift := 0
	digits = strings.TrimLeft(digits, "0")
	if exp != "" {
		e := exp
		if e[0] == '-' || e[0] == '+' {
			e = e[1:]
		}
		if e == "" || !allDigits(e) {
			return 0, false
		}
		if len(e) > 4 { // zero whatever its exponent; anything else far out of range
			return 0, digits == ""
		}
		shift, _ = strconv.Atoi(e)
		if exp[0] == '-' {
			shift = -shift
		}
	}
	point := len(digits) - len(frac) + shift // digits before the decimal point
	if digits == "" {
		return 0, true
	}
	if point <= 0 || strings.TrimRight(digits[min(point, len(digits)):], "0") != "" || point > 6 {
		return 0, false
	}
	n, _ := strconv.Atoi(digits[:min(point, len(digits))] + strings.Repeat("0", max(point-len(digits), 0)))
	if neg {
		n = -n
	}
	return n, true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// A Profile holds the eight fields; an empty string means no data. Age is kept in its
// decimal form.
type Profile [NumFields]string

// Get returns the value of f.
func (p *Profile) Get(f Field) string { return p[f] }

// Empty reports whether no field has data.
func (p *Profile) Empty() bool {
	for _, v := range p {
		if v != "" {
			return false
		}
	}
	return true
}

// Apply merges a patch: fields in the patch change (an empty value clears), others stay.
func (p *Profile) Apply(patch *Patch) {
	for f := Field(0); f < NumFields; f++ {
		if v, ok := patch.Get(f); ok {
			p[f] = v
		}
	}
}

// A Patch is a partial profile update: the fields it holds change, the others stay.
// A held empty value clears the field. The zero Patch changes nothing.
type Patch struct {
	present uint16
	values  [NumFields]string
}

// Set puts f to v in the patch ("" clears the field).
func (p *Patch) Set(f Field, v string) {
	p.present |= 1 << f
	p.values[f] = v
}

// Get returns the patch's value for f and whether the patch holds f.
func (p *Patch) Get(f Field) (string, bool) {
	return p.values[f], p.present&(1<<f) != 0
}

// Empty reports whether the patch changes nothing.
func (p *Patch) Empty() bool { return p == nil || p.present == 0 }

// Fields returns the fields the patch holds, in order.
func (p *Patch) Fields() []Field {
	var fs []Field
	for f := Field(0); f < NumFields; f++ {
		if p.present&(1<<f) != 0 {
			fs = append(fs, f)
		}
	}
	return fs
}

// PatchOf returns a patch that sets every field with data in prof (for imports).
func PatchOf(prof *Profile) *Patch {
	var p Patch
	for f := Field(0); f < NumFields; f++ {
		if prof[f] != "" {
			p.Set(f, prof[f])
		}
	}
	return &p
}

// MaxUIDLen is the longest UID a site may supply (Gigya: 252 ASCII characters).
const MaxUIDLen = 252

// ValidateUID checks a site-supplied UID: 1 to 252 printable ASCII characters.
func ValidateUID(uid string) error {
	if uid == "" {
		return fmt.Errorf("UID is empty")
	}
	if len(uid) > MaxUIDLen {
		return fmt.Errorf("UID is longer than %d characters", MaxUIDLen)
	}
	for i := 0; i < len(uid); i++ {
		if uid[i] < ' ' || uid[i] > '~' {
			return fmt.Errorf("UID must be printable ASCII")
		}
	}
	return nil
}

// A User is a user of one site. Every user in Socius is a site user: the only identity
// provider is the site itself.
type User struct {
	APIKey    string
	UID       string
	Profile   Profile
	CreatedAt time.Time
	// UpdatedAt is when the profile last changed (the site identity's lastUpdated).
	UpdatedAt time.Time
	// LoginAt is the last notifyLogin (or token grant) for the user; zero if none.
	LoginAt time.Time
	// LoggedIn is true between a login and a logout.
	LoggedIn bool
}
