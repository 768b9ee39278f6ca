package nonce

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"
)

// FuzzLoad reads arbitrary bytes as a snapshot. With seal set, the input gets the
// checksum a Save would give it, so that what lies past the checksum (the header's
// count and window, the entries) is reached too. Load must refuse with ErrBadSnapshot
// or load all that it accepted: a count that matches the entries, no entry kept for
// less than it was saved for, no fingerprint twice, and what it loaded saves and loads
// back the same.
func FuzzLoad(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	for _, n := range []int{0, 1, 3, 40} {
		c := New(0)
		for i := range n {
			exp := now.Add(time.Duration(i%3) * time.Minute) // some expire at the load
			c.UseNonce(context.Background(), "cred", fmt.Sprint("n", i), exp, now)
		}
		var buf bytes.Buffer
		if _, err := c.Save(&buf, now, 120*time.Second); err != nil {
			f.Fatal(err)
		}
		data := buf.Bytes()
		f.Add(data[:len(data)-sha256.Size], true, uint16(120))
		f.Add(data, false, uint16(300))
	}
	f.Add([]byte(snapshotMagic), true, uint16(0))
	f.Add([]byte{}, false, uint16(120))

	const max = 64 // small, so that the cap is met as often as not
	f.Fuzz(func(t *testing.T, data []byte, seal bool, windowSeconds uint16) {
		if seal {
			sum := sha256.Sum256(data)
			data = append(data[:len(data):len(data)], sum[:]...)
		}
		window := time.Duration(windowSeconds) * time.Second
		later := now.Add(30 * time.Second)
		c, loaded, err := Load(bytes.NewReader(data), max, later, window)
		if err != nil {
			if !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("Load: %v, want ErrBadSnapshot", err)
			}
			return
		}
		// Accepted: the input must be a whole snapshot as Save writes one.
		body := data[len(snapshotMagic) : len(data)-sha256.Size]
		entries := body[32:]
		if count := binary.LittleEndian.Uint64(body[24:32]); count != uint64(len(entries)/12) || len(entries)%12 != 0 {
			t.Fatalf("accepted a header counting %d entries over %d bytes of entries", count, len(entries))
		}
		if saved := int64(binary.LittleEndian.Uint64(body[16:24])); saved < 0 {
			t.Fatalf("accepted a saved window of %d ns", saved)
		}
		savedExp := map[uint64]uint32{}
		for e := entries; len(e) >= 12; e = e[12:] {
			savedExp[binary.LittleEndian.Uint64(e)] = binary.LittleEndian.Uint32(e[8:])
		}
		if loaded > max {
			t.Fatalf("loaded %d, over the max of %d", loaded, max)
		}
		// What it holds saves and loads back the same.
		var buf bytes.Buffer
		n, err := c.Save(&buf, later, window)
		if err != nil || n != loaded {
			t.Fatalf("Save of the loaded cache: %d, %v; loaded %d", n, err, loaded)
		}
		held := snapshotEntries(t, buf.Bytes())
		if len(held) != loaded {
			t.Fatalf("the loaded cache holds %d fingerprints (one twice?), loaded %d", len(held), loaded)
		}
		for fp, exp := range held {
			if was, ok := savedExp[fp]; !ok || exp < was {
				t.Fatalf("fingerprint %x: held until %d, saved %v until %d", fp, exp, ok, was)
			}
		}
		again, n2, err := Load(bytes.NewReader(buf.Bytes()), max, later, window)
		if err != nil || n2 != loaded {
			t.Fatalf("Load of its Save: %d, %v; want %d", n2, err, loaded)
		}
		var buf2 bytes.Buffer
		again.Save(&buf2, later, window)
		if got := snapshotEntries(t, buf2.Bytes()); fmt.Sprint(got) != fmt.Sprint(held) {
			t.Fatalf("Save, Load, Save: %v, want %v", got, held)
		}
	})
}

// snapshotEntries returns the entries of a snapshot Save wrote, by fingerprint.
func snapshotEntries(t *testing.T, data []byte) map[uint64]uint32 {
	t.Helper()
	m := map[uint64]uint32{}
	for e := data[len(snapshotMagic)+32 : len(data)-sha256.Size]; len(e) >= 12; e = e[12:] {
		m[binary.LittleEndian.Uint64(e)] = binary.LittleEndian.Uint32(e[8:])
	}
	return m
}
