// Package seedrange reads which seeds a randomized test runs, from an environment
// variable that gives N (seeds 1 to N) or A-B (seeds A to B): the store conformance
// suite's model tests (SOCIUS_MODEL_SEEDS) and the e2e API model tests
// (SOCIUS_API_MODEL_SEEDS) take the same form.
package seedrange

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Seeds returns the seeds the variable name gives, or those from 1 to def when it is
// unset or empty; a value that is not N or A-B of positive numbers, A at most B, is an
// error naming the variable.
func Seeds(name string, def uint64) ([]uint64, error) {
	from, to := uint64(1), def
	if v := os.Getenv(name); v != "" {
		a, b, ranged := strings.Cut(v, "-")
		x, errA := strconv.ParseUint(a, 10, 64)
		y, errB := strconv.ParseUint(b, 10, 64)
		switch {
		case !ranged && errA == nil && x > 0:
			to = x
		case ranged && errA == nil && errB == nil && 0 < x && x <= y:
			from, to = x, y
		default:
			return nil, fmt.Errorf("%s=%q: want N or A-B", name, v)
		}
	}
	var seeds []uint64
	for s := from; s <= to; s++ {
		seeds = append(seeds, s)
	}
	return seeds, nil
}
