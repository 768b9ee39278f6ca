//go:build unix

package nonce

import (
	"syscall"
	"unsafe"
)

// allocSlots maps anonymous memory, zeroed by the system, for n keys followed by n
// expiries, and returns them with the function that unmaps them; nil slices if it
// cannot (the table then lives on the heap).
func allocSlots(n int) (keys []uint64, exps []uint32, release func()) {
	mem, err := syscall.Mmap(-1, 0, n*(8+4), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil, nil, nil
	}
	base := unsafe.Pointer(unsafe.SliceData(mem)) // page-aligned
	keys = unsafe.Slice((*uint64)(base), n)
	exps = unsafe.Slice((*uint32)(unsafe.Add(base, 8*n)), n)
	return keys, exps, func() { syscall.Munmap(mem) }
}
