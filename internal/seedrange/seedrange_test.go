package seedrange

import (
	"slices"
	"testing"
)

func TestSeeds(t *testing.T) {
	for _, c := range []struct {
		v    string
		want []uint64
	}{
		{"", []uint64{1, 2, 3}},
		{"2", []uint64{1, 2}},
		{"4-6", []uint64{4, 5, 6}},
		{"5-5", []uint64{5}},
	} {
		t.Setenv("SEEDS_TEST", c.v)
		got, err := Seeds("SEEDS_TEST", 3)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("SEEDS_TEST=%q: %v, %v; want %v", c.v, got, err, c.want)
		}
	}
	for _, v := range []string{"0", "x", "3-2", "0-2", "-3", "2-", "1-x"} {
		t.Setenv("SEEDS_TEST", v)
		if got, err := Seeds("SEEDS_TEST", 3); err == nil {
			t.Errorf("SEEDS_TEST=%q: %v, want an error", v, got)
		}
	}
}
