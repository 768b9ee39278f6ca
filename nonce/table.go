package nonce

import (
	"math/bits"
	"runtime"
	"sync/atomic"
)

// A table is one shard's open-addressing table: keys[i] is a fingerprint (0: an empty
// slot) and exps[i] its expiry. Where the system allows (alloc_unix.go), its memory is
// mapped outside the Go heap: millions of nonces make tables of tens of megabytes,
// rebuilt every few seconds, and on the heap each old table would linger until a
// collection, which the runtime schedules when the heap has doubled; the server's
// resident memory at a full nonce window was half garbage. A mapped table is returned
// to the system when the table becomes unreachable (the next collection, which the
// small remaining heap keeps frequent). So a table's slots are only ever used through
// the table, while it is reachable: a shard's current table, or one kept alive.
type table struct {
	keys []uint64
	exps []uint32
}

// tablesMade counts the tables made, for the tests: each one holds its memory until
// the collection after it is dropped.
var tablesMade atomic.Int64

// newTable returns a table of n empty slots.
func newTable(n int) *table {
	tablesMade.Add(1)
	keys, exps, release := allocSlots(n)
	if release == nil {
		return &table{keys: make([]uint64, n), exps: make([]uint32, n)}
	}
	t := &table{keys: keys, exps: exps}
	runtime.AddCleanup(t, func(release func()) { release() }, release)
	return t
}

// home is the first slot to look at for the fingerprint fp: the fingerprint without
// its top 4 bits (which chose the shard, so are the same for every entry of a table)
// scaled to the table's size, the high word of a 64-bit product.
func (t *table) home(fp uint64) uint64 {
	hi, _ := bits.Mul64(fp<<4, uint64(len(t.keys)))
	return hi
}

// next is the slot after i, wrapping around at the end of the table.
func (t *table) next(i uint64) uint64 {
	if i++; i == uint64(len(t.keys)) {
		return 0
	}
	return i
}
