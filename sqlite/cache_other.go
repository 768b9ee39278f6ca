//go:build !unix

package sqlite

// Without mmap, the header is read with pread.

func (c *cache) mapHeader()                                   {}
func (c *cache) unmapHeader() error                           { return nil }
func (c *cache) readMapped(buf *[2 * walHeaderSize]byte) bool { return false }
