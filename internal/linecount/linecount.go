// Package linecount compares two texts as the lines they hold, whatever their order:
// what tests of exports (JSON lines) say when an export differs from the one expected.
package linecount

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Diff says which lines got holds a number of times other than want does, one line
// of the answer each, in byte order; "the same lines in another order" when none.
func Diff(got, want string) string {
	counts := map[string][2]int{}
	for i, text := range []string{got, want} {
		for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
			c := counts[line]
			c[i]++
			counts[line] = c
		}
	}
	var b strings.Builder
	for _, line := range slices.Sorted(maps.Keys(counts)) {
		if c := counts[line]; c[0] != c[1] {
			fmt.Fprintf(&b, "%d times, want %d: %s\n", c[0], c[1], line)
		}
	}
	if b.Len() == 0 {
		return "the same lines in another order"
	}
	return b.String()
}
