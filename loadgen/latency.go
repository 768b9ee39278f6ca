package loadgen

import (
	"math"
	"slices"
	"time"
)

// latencies records every latency of a run, in nanoseconds. Keeping them all (8 bytes
// a request: 8 MB for a million requests) makes every percentile exact, with no
// bucketing to reason about.
type latencies []int64

func (l *latencies) add(d time.Duration) { *l = append(*l, int64(d)) }

// summary is what a run's latencies come to, in milliseconds.
type summary struct {
	Mean, P50, P99, P999, Max float64
}

// summarize sorts l and reads its percentiles: the value at or below which that share
// of the requests finished (nearest rank).
func (l latencies) summarize() summary {
	if len(l) == 0 {
		return summary{}
	}
	slices.Sort(l)
	var sum float64
	for _, v := range l {
		sum += float64(v)
	}
	return summary{
		Mean: sum / float64(len(l)) / 1e6,
		P50:  float64(l.rank(0.50)) / 1e6,
		P99:  float64(l.rank(0.99)) / 1e6,
		P999: float64(l.rank(0.999)) / 1e6,
		Max:  float64(l[len(l)-1]) / 1e6,
	}
}

// rank returns the nearest-rank q-quantile of sorted l.
func (l latencies) rank(q float64) int64 {
	i := int(math.Ceil(q*float64(len(l)))) - 1
	return l[max(0, min(i, len(l)-1))]
}
