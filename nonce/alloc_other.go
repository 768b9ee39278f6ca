//go:build !unix

package nonce

type mapping struct {
	keys []uint64
	exps []uint32
}

// allocSlots cannot map memory here: tables live on the heap.
func allocSlots(int) *mapping { return nil }

func (*mapping) free() {}
