package emulator

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/gigya"
	"github.com/socius/socius/server"
)

// A Rule makes calls of a method, for a site, fail with a Gigya error or take longer.
//
// Which calls: those of Method ("" for every method; "setUserInfo" means
// "socialize.setUserInfo") for the site APIKey ("" for every site). How many: the next
// Count of them when Count > 0, after which the rule is spent and removed; each one
// with probability Fraction when 0 < Fraction < 1 (Count then caps the faults
// injected); every one, until cleared, when neither is given. What: wait Delay, then
// answer Code (0: run the call normally, only later).
type Rule struct {
	ID       int      `json:"id"`
	Method   string   `json:"method,omitempty"`
	APIKey   string   `json:"apiKey,omitempty"`
	Code     int      `json:"errorCode,omitempty"`
	Delay    Duration `json:"delay,omitempty"`
	Count    int      `json:"count,omitempty"`
	Fraction float64  `json:"fraction,omitempty"`
	// Remaining is how many faults the rule has left to inject (Count rules only).
	Remaining int `json:"remaining,omitempty"`
	// Hits counts the calls the rule answered or delayed.
	Hits    int  `json:"hits"`
	Created Time `json:"created"`
}

// Duration is a time.Duration that reads and writes as Go duration text ("250ms").
type Duration time.Duration

// String returns Go duration text.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes the duration as text.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads Go duration text.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("not a duration (e.g. 250ms, 2s): %q", b)
	}
	*d = Duration(v)
	return nil
}

// MaxDelay bounds a rule's delay: below the server's write timeout (30 s), so that the
// delayed answer still reaches the client.
const MaxDelay = 25 * time.Second

// MaxRules bounds the rules held at once: every call of the emulator goes through
// them in turn, under one lock, and a script that adds rules in a loop without
// deleting them must not slow every call, and grow, without end.
const MaxRules = 1000

// MethodName returns the full name of a method given with or without its namespace
// ("getUserInfo" -> "socialize.getUserInfo"); "" and "*" mean every method.
func MethodName(m string) string {
	m = strings.TrimSpace(m)
	if m == "*" {
		return ""
	}
	if m != "" && !strings.Contains(m, ".") {
		return "socialize." + m
	}
	return m
}

// Validate checks a rule as given by a client and spells its method as Socius serves
// it. A method Socius does not serve is refused: its calls fail before the rules are
// consulted (400001), so such a rule would never fire.
func (r *Rule) Validate() error {
	if r.Method = MethodName(r.Method); r.Method != "" {
		name, ok := server.CanonicalMethod(r.Method)
		if !ok {
			return fmt.Errorf("method %q is not one Socius serves, so no call would meet the rule (%s)", r.Method, strings.Join(server.MethodNames(), ", "))
		}
		r.Method = name
	}
	if r.APIKey == "*" {
		r.APIKey = ""
	}
	if r.APIKey != "" && !socius.ValidAPIKey(r.APIKey) {
		// No call names such an apiKey (400093 before the rules): the rule would
		// never fire, and the value is echoed in lists and the console.
		return errors.New("apiKey must be 1 to 128 printable characters without spaces, or * for every site")
	}
	if r.Code != 0 {
		// Any code of the table, a retired one too: a client may still handle it.
		if _, ok := gigya.LookupCode(r.Code); !ok {
			return fmt.Errorf("errorCode %d is not in Gigya's error table (e.g. 403048, 500001, 504002)", r.Code)
		}
	}
	if r.Delay < 0 || time.Duration(r.Delay) > MaxDelay {
		return fmt.Errorf("delay must be from 0 to %v", MaxDelay)
	}
	if r.Code == 0 && r.Delay == 0 {
		return errors.New("a rule needs an errorCode, a delay, or both")
	}
	if r.Count < 0 {
		return errors.New("count must not be negative")
	}
	if !(r.Fraction >= 0 && r.Fraction <= 1) { // NaN too; 0 is "not given": every call
		return errZeroFraction
	}
	return nil
}

// errZeroFraction refuses a fraction given as 0, which would otherwise read as none
// (every call).
var errZeroFraction = errors.New("fraction must be above 0 and at most 1 (leave it out for every call)")

// Faults holds the fault rules; its Fault method is meant for server.Config.Fault.
type Faults struct {
	mu     sync.Mutex
	rules  []*Rule
	lastID int
	clock  socius.Clock
	// rand returns a number in [0, 1) for fractions; tests replace it.
	rand func() float64
	// maxDelay bounds a rule's delay below the server's write timeout (set by New;
	// MaxDelay when 0).
	maxDelay time.Duration
}

// NewFaults returns an empty rule set.
func NewFaults(clock socius.Clock) *Faults {
	return &Faults{clock: clock, rand: rand.Float64}
}

// Add validates the rule, gives it an ID and puts it after the others (the first
// matching rule applies).
func (f *Faults) Add(r Rule) (Rule, error) {
	if err := r.Validate(); err != nil {
		return Rule{}, err
	}
	if f.maxDelay > 0 && time.Duration(r.Delay) > f.maxDelay {
		return Rule{}, fmt.Errorf("delay must be at most %v: a second before the server's write timeout (--write-timeout), which would cut the call", f.maxDelay)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.rules) >= MaxRules {
		return Rule{}, fmt.Errorf("there are %d rules already, the most the emulator keeps: delete some, or all (DELETE /_emulator/api/faults, socius emulator faults clear)", len(f.rules))
	}
	f.lastID++
	r.ID, r.Hits, r.Remaining, r.Created = f.lastID, 0, r.Count, Time{f.clock.Now().UTC()}
	f.rules = append(f.rules, &r)
	return r, nil
}

// Rules lists the rules in the order they apply.
func (f *Faults) Rules() []Rule {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Rule, len(f.rules))
	for i, r := range f.rules {
		out[i] = *r
	}
	return out
}

// Delete removes one rule and reports whether it existed.
func (f *Faults) Delete(id int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, r := range f.rules {
		if r.ID == id {
			f.rules = append(f.rules[:i], f.rules[i+1:]...)
			return true
		}
	}
	return false
}

// Clear removes every rule and reports how many there were.
func (f *Faults) Clear() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.rules)
	f.rules = nil
	return n
}

// Fault reports what the first rule that matches a call of method for apiKey does to
// it, and counts the call against that rule. A rule whose fraction does not fire lets
// the call go on to the next rules.
func (f *Faults) Fault(method, apiKey string) (code int, delay time.Duration, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, r := range f.rules {
		if r.Method != "" && !strings.EqualFold(r.Method, method) || r.APIKey != "" && r.APIKey != apiKey {
			continue
		}
		if r.Fraction > 0 && r.Fraction < 1 && f.rand() >= r.Fraction {
			continue
		}
		r.Hits++
		if r.Count > 0 {
			r.Remaining--
			if r.Remaining <= 0 {
				f.rules = append(f.rules[:i], f.rules[i+1:]...)
			}
		}
		return r.Code, time.Duration(r.Delay), true
	}
	return 0, 0, false
}
