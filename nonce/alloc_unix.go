//go:build unix

package nonce

import (
	"syscall"
	"unsafe"
)

// A mapping is anonymous memory holding n keys followed by n expiries.
type mapping struct {
	mem  []byte
	keys []uint64
	exps []uint32
}

// allocSlots maps memory for n slots, zeroed by the system; nil if it cannot (the
// table then lives on the heap).
func allocSlots(n int) *mapping {
	size := n * (8 + 4)
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil
	}
	base := unsafe.Pointer(unsafe.SliceData(mem)) // page-aligned
	return &mapping{
		mem:  mem,
		keys: unsafe.Slice((*uint64)(base), n),
		exps: unsafe.Slice((*uint32)(unsafe.Add(base, 8*n)), n),
	}
}

func (m *mapping) free() { syscall.Munmap(m.mem) }
