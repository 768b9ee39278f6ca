package nonce

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// TestSipHash: the example of the SipHash paper (key 00..0f, message 00..0e), and, for
// many lengths and splits, the same value as a plain SipHash-2-4 of the whole message
// (sipHash streams two strings and the zero byte between them).
func TestSipHash(t *testing.T) {
	const k0, k1 = 0x0706050403020100, 0x0f0e0d0c0b0a0908
	msg := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}
	if got := sipHash(k0, k1, "", string(msg[1:])); got != 0xa129ca6149be45e5 {
		t.Errorf("the paper's example: %x, want a129ca6149be45e5", got)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		a, b := make([]byte, rng.IntN(40)), make([]byte, rng.IntN(40))
		for i := range a {
			a[i] = byte(rng.Uint32())
		}
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		key0, key1 := rng.Uint64(), rng.Uint64()
		whole := append(append(append([]byte(nil), a...), 0), b...)
		if got, want := sipHash(key0, key1, string(a), string(b)), plainSipHash(key0, key1, whole); got != want {
			t.Fatalf("%x | %x: %x, want %x", a, b, got, want)
		}
	}
}

// plainSipHash is SipHash-2-4 as the paper writes it, over a whole message.
func plainSipHash(k0, k1 uint64, m []byte) uint64 {
	v0, v1, v2, v3 := k0^0x736f6d6570736575, k1^0x646f72616e646f6d, k0^0x6c7967656e657261, k1^0x7465646279746573
	round := func() {
		v0 += v1
		v1 = bits.RotateLeft64(v1, 13) ^ v0
		v0 = bits.RotateLeft64(v0, 32)
		v2 += v3
		v3 = bits.RotateLeft64(v3, 16) ^ v2
		v0 += v3
		v3 = bits.RotateLeft64(v3, 21) ^ v0
		v2 += v1
		v1 = bits.RotateLeft64(v1, 17) ^ v2
		v2 = bits.RotateLeft64(v2, 32)
	}
	last := make([]byte, 8)
	full := len(m) / 8 * 8
	copy(last, m[full:])
	last[7] = byte(len(m))
	words := append(append([]byte(nil), m[:full]...), last...)
	for i := 0; i < len(words); i += 8 {
		var w uint64
		for j := 7; j >= 0; j-- {
			w = w<<8 | uint64(words[i+j])
		}
		v3 ^= w
		round()
		round()
		v0 ^= w
	}
	v2 ^= 0xff
	for range 4 {
		round()
	}
	return v0 ^ v1 ^ v2 ^ v3
}

// TestSaveLoad: a cache loaded from another's Save refuses the nonces that other held
// (not expired at the load), under the other's key; an expired one is new again; a new
// cache knows none of them; a snapshot cut short or changed is refused whole.
func TestSaveLoad(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	c := New(0)
	for i := range 5000 {
		exp := now.Add(120 * time.Second)
		if i%5 == 0 {
			exp = now.Add(10 * time.Second) // gone by the load
		}
		if fresh, err := c.UseNonce(ctx, "partner-signature 3_a", fmt.Sprint("n", i), exp, now); !fresh || err != nil {
			t.Fatal(fresh, err)
		}
	}
	var buf bytes.Buffer
	if n, err := c.Save(&buf, now, 120*time.Second); err != nil || n != 5000 {
		t.Fatalf("Save: %d, %v", n, err)
	}
	later := now.Add(30 * time.Second)
	l, n, err := Load(bytes.NewReader(buf.Bytes()), 0, later, 120*time.Second)
	if err != nil || n != 4000 {
		t.Fatalf("Load: %d, %v; want the 4,000 not expired", n, err)
	}
	for i := range 5000 {
		fresh, err := l.UseNonce(ctx, "partner-signature 3_a", fmt.Sprint("n", i), later.Add(120*time.Second), later)
		if err != nil || fresh != (i%5 == 0) {
			t.Fatalf("nonce %d after the load: fresh %v, %v", i, fresh, err)
		}
	}
	if fresh, _ := New(0).UseNonce(ctx, "partner-signature 3_a", "n1", later.Add(time.Minute), later); !fresh {
		t.Error("a new cache knew a nonce of the snapshot")
	}
	if l.Len(later) != 5000 {
		t.Errorf("Len after the load and the 1,000 new: %d", l.Len(later))
	}
	// At most max are loaded.
	if _, n, err := Load(bytes.NewReader(buf.Bytes()), 100, later, 120*time.Second); err != nil || n != 100 {
		t.Errorf("Load with max 100: %d, %v", n, err)
	}
	// Whole or not at all.
	data := buf.Bytes()
	for name, bad := range map[string][]byte{
		"cut short":   data[:len(data)-1],
		"cut at half": data[:len(data)/2],
		"changed":     append(append([]byte(nil), data[:100]...), append([]byte{data[100] ^ 1}, data[101:]...)...),
		"empty":       nil,
		"other":       []byte("socius nonces 1\n" + string(data[16:])),
	} {
		if _, _, err := Load(bytes.NewReader(bad), 0, later, 120*time.Second); !errors.Is(err, ErrBadSnapshot) {
			t.Errorf("%s: %v, want ErrBadSnapshot", name, err)
		}
	}
	// Loaded by a server with a wider window (--clock-skew 5m after 2m), each nonce is
	// kept as much longer: that server takes its request for as much longer.
	wider := now.Add(200 * time.Second) // past the saved expiries, within the wider ones
	w, n, err := Load(bytes.NewReader(buf.Bytes()), 0, wider, 300*time.Second)
	if err != nil || n != 4000 {
		t.Fatalf("Load with a wider window: %d, %v; want the 4,000 of the 120 s expiries", n, err)
	}
	if fresh, _ := w.UseNonce(ctx, "partner-signature 3_a", "n1", wider.Add(time.Minute), wider); fresh {
		t.Error("a nonce of the snapshot, loaded with a wider window, was forgotten")
	}
	// A narrower one keeps them as saved.
	if _, n, err := Load(bytes.NewReader(buf.Bytes()), 0, wider, 60*time.Second); err != nil || n != 0 {
		t.Errorf("Load with a narrower window, past the saved expiries: %d, %v", n, err)
	}
}

// TestLoadRefusesInconsistent: a snapshot whose checksum is right but whose header or
// entries no Save writes is refused whole: a count that only matches the entries
// modulo 2^64, a negative window (which shortened every expiry), a fingerprint twice
// (which was held, counted and saved twice). Found by FuzzLoad.
func TestLoadRefusesInconsistent(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := New(0)
	c.UseNonce(context.Background(), "cred", "n1", now.Add(time.Minute), now)
	var buf bytes.Buffer
	if _, err := c.Save(&buf, now, 120*time.Second); err != nil {
		t.Fatal(err)
	}
	body := buf.Bytes()[:buf.Len()-sha256.Size]
	head := len(snapshotMagic)
	resealed := func(change func(b []byte) []byte) []byte {
		b := change(append([]byte(nil), body...))
		sum := sha256.Sum256(b)
		return append(b, sum[:]...)
	}
	if _, n, err := Load(bytes.NewReader(resealed(func(b []byte) []byte { return b })), 0, now, 120*time.Second); err != nil || n != 1 {
		t.Fatalf("the snapshot itself, resealed: %d, %v", n, err)
	}
	for name, change := range map[string]func(b []byte) []byte{
		"count plus 2^62": func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[head+24:], 1+1<<62)
			return b
		},
		"negative window": func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[head+16:], 1<<63)
			return b
		},
		"a fingerprint twice": func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[head+24:], 2)
			return append(b, b[head+32:head+44]...)
		},
	} {
		if _, n, err := Load(bytes.NewReader(resealed(change)), 0, now, 120*time.Second); !errors.Is(err, ErrBadSnapshot) {
			t.Errorf("%s: loaded %d, %v; want ErrBadSnapshot", name, n, err)
		}
	}
}

// TestLoadMakesEachTableOnce: a load makes each shard's table once, at its size, as
// small as the tables calls grow to; grown entry by entry it made a table at every
// fifth more, each held until a collection (56 MB of old tables after loading 570,000
// nonces into a server that had not collected yet).
func TestLoadMakesEachTableOnce(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	c := New(0)
	const n = 200_000
	for i := range n {
		if fresh, err := c.UseNonce(ctx, "partner-signature 3_a", fmt.Sprint(i), now.Add(120*time.Second), now); !fresh || err != nil {
			t.Fatal(fresh, err)
		}
	}
	var buf bytes.Buffer
	if _, err := c.Save(&buf, now, 120*time.Second); err != nil {
		t.Fatal(err)
	}
	before := tablesMade.Load()
	l, loaded, err := Load(bytes.NewReader(buf.Bytes()), 0, now, 120*time.Second)
	if err != nil || loaded != n {
		t.Fatalf("Load: %d, %v", loaded, err)
	}
	if made := tablesMade.Load() - before; made > shards {
		t.Errorf("the load made %d tables for %d shards", made, shards)
	}
	slots := 0
	for i := range l.shards {
		slots += len(l.shards[i].tab.keys)
	}
	if limit := n*8/5 + shards*minSlots; slots > limit {
		t.Errorf("%d slots for %d loaded nonces, want at most %d", slots, n, limit)
	}
}

// countingZeros is an endless input of zero bytes, /dev/zero in the nonces file's
// place, that counts what was read; past stop it fails, so that a reader without a
// bound ends.
type countingZeros struct{ read, stop int64 }

func (z *countingZeros) Read(p []byte) (int, error) {
	if z.read >= z.stop {
		return 0, errors.New("read past the test's stop: the input was read without a bound")
	}
	n := int64(len(p))
	if n > z.stop-z.read {
		n = z.stop - z.read
	}
	clear(p[:n])
	z.read += n
	return int(n), nil
}

// TestLoadBounded: an input longer than any snapshot of DefaultMax nonces is refused
// after that many bytes, not read whole into memory.
func TestLoadBounded(t *testing.T) {
	longest := int64(len(snapshotMagic)) + 32 + 12*DefaultMax + 32
	z := &countingZeros{stop: longest + 4<<20}
	_, _, err := Load(z, 0, time.Now(), 120*time.Second)
	if !errors.Is(err, ErrBadSnapshot) || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("Load of an endless input: %v, want ErrBadSnapshot, longer than a snapshot", err)
	}
	if z.read > longest+1 {
		t.Errorf("read %d bytes, want at most %d (a snapshot of %d nonces, and one more)", z.read, longest+1, DefaultMax)
	}
}
