package nonce

import "math/bits"

// sipHash is SipHash-2-4 (Aumasson and Bernstein, 2012) under the key (k0, k1), over
// the bytes of a, a zero byte, then the bytes of b: a keyed hash whose key, unlike
// hash/maphash's seed, can be saved, so that a cache's fingerprints mean the same to
// the process that loads them (Save, Load). It allocates nothing.
func sipHash(k0, k1 uint64, a, b string) uint64 {
	s := sipState{
		v0: k0 ^ 0x736f6d6570736575,
		v1: k1 ^ 0x646f72616e646f6d,
		v2: k0 ^ 0x6c7967656e657261,
		v3: k1 ^ 0x7465646279746573,
	}
	s.write(a)
	s.writeByte(0)
	s.write(b)
	return s.sum()
}

type sipState struct {
	v0, v1, v2, v3 uint64
	tail           uint64 // the bytes of an unfinished word, little-endian
	ntail          uint   // how many
	n              uint64 // bytes written
}

func (s *sipState) write(p string) {
	s.n += uint64(len(p))
	for s.ntail > 0 && len(p) > 0 {
		s.addTail(p[0])
		p = p[1:]
	}
	for len(p) >= 8 {
		s.block(uint64(p[0]) | uint64(p[1])<<8 | uint64(p[2])<<16 | uint64(p[3])<<24 |
			uint64(p[4])<<32 | uint64(p[5])<<40 | uint64(p[6])<<48 | uint64(p[7])<<56)
		p = p[8:]
	}
	for i := 0; i < len(p); i++ {
		s.addTail(p[i])
	}
}

func (s *sipState) writeByte(c byte) {
	s.n++
	s.addTail(c)
}

// addTail adds c to the unfinished word, and hashes the word once it is whole.
func (s *sipState) addTail(c byte) {
	s.tail |= uint64(c) << (8 * s.ntail)
	s.ntail++
	if s.ntail == 8 {
		s.block(s.tail)
		s.tail, s.ntail = 0, 0
	}
}

func (s *sipState) block(m uint64) {
	s.v3 ^= m
	s.round()
	s.round()
	s.v0 ^= m
}

func (s *sipState) sum() uint64 {
	s.block(s.tail | s.n<<56) // the last word: the bytes left and the length's low byte
	s.v2 ^= 0xff
	s.round()
	s.round()
	s.round()
	s.round()
	return s.v0 ^ s.v1 ^ s.v2 ^ s.v3
}

func (s *sipState) round() {
	s.v0 += s.v1
	s.v1 = bits.RotateLeft64(s.v1, 13)
	s.v1 ^= s.v0
	s.v0 = bits.RotateLeft64(s.v0, 32)
	s.v2 += s.v3
	s.v3 = bits.RotateLeft64(s.v3, 16)
	s.v3 ^= s.v2
	s.v0 += s.v3
	s.v3 = bits.RotateLeft64(s.v3, 21)
	s.v3 ^= s.v0
	s.v2 += s.v1
	s.v1 = bits.RotateLeft64(s.v1, 17)
	s.v1 ^= s.v2
	s.v2 = bits.RotateLeft64(s.v2, 32)
}
