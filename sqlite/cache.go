package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/socius/socius"
)

// The site of every call is read before anything else, and a site (or key) changes a
// few times a year, so Site and Key are served from memory while the database is
// known not to have changed at all - by this process or any other, such as `socius
// site` or `socius key` run beside the server. That is known from the WAL-index
// header: the first 96 bytes of the -shm file, two copies of a 48-byte header that
// every commit rewrites (it holds a commit counter, the last frame of the WAL, the
// WAL's salts and the checksum of its frames; see "The WAL-Index Header" in SQLite's
// file format documentation, https://www.sqlite.org/walformat.html). A committing
// connection writes it before its commit returns, so a header that equals the one
// read before an entry was fetched proves that nothing has been committed since.
//
// The header is read from a read-only mapping of the file's first page (a few loads),
// or where that is not possible with one pread; the lookup it replaces costs two
// locking system calls and a query. Any doubt (the copies differ because a commit is
// writing them, the file cannot be read) means no cache for that call.
type cache struct {
	shm *os.File
	mem atomic.Pointer[[]byte] // the -shm file's first page, mapped read-only; nil: read with pread
	// pin is a connection held open for the store's life: while a connection to
	// the database is open, SQLite neither deletes nor reinitializes the -shm file,
	// so shm stays the live one.
	pinDB *sql.DB
	pin   *sql.Conn

	misses atomic.Int64 // lookups that queried the database: for tests

	mu      sync.Mutex
	version [walHeaderSize]byte // the header the entries were read under
	sites   map[string]socius.Site
	keys    map[string]socius.Key
}

const (
	walHeaderSize = 48
	maxCached     = 1024 // entries per map; beyond, the map starts over
)

// openCache opens the -shm file of the database at path (in WAL mode), with dsn for
// its pinned connection. It returns nil, and the store runs uncached, when that fails.
//
// It returns a file to close only after every connection, when the cache could not
// be used: closing it at once would drop this process's locks on the WAL-index
// (closing any descriptor of a file drops every POSIX lock the process holds on it),
// SQLite's included, for the store's whole life.
func openCache(path, dsn string) (*cache, *os.File) {
	pinDB, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, nil
	}
	pin, err := pinDB.Conn(context.Background())
	if err != nil {
		pinDB.Close()
		return nil, nil
	}
	// A read maps the -shm file into the pinned connection.
	var n int
	if err := pin.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
		pin.Close()
		pinDB.Close()
		return nil, nil
	}
	shm, err := os.Open(path + "-shm")
	if err != nil {
		pin.Close()
		pinDB.Close()
		return nil, nil
	}
	c := &cache{shm: shm, pinDB: pinDB, pin: pin, sites: map[string]socius.Site{}, keys: map[string]socius.Key{}}
	c.mapHeader()
	// Another process in the middle of a commit leaves the two copies of the header
	// apart for a moment.
	for range 50 {
		if _, ok := c.header(); ok {
			return c, nil
		}
		time.Sleep(time.Millisecond)
	}
	c.closeConns()
	return nil, shm
}

// closeConns closes the cache's connection and mapping; closeFile, its descriptor of
// the WAL-index, which must wait until every connection of the process is closed (see
// openCache).
func (c *cache) closeConns() error {
	if c == nil {
		return nil
	}
	return errors.Join(c.unmapHeader(), c.pin.Close(), c.pinDB.Close())
}

func (c *cache) closeFile() error {
	if c == nil {
		return nil
	}
	return c.shm.Close()
}

// header reads the WAL-index header; ok is false when it cannot be trusted.
func (c *cache) header() (h [walHeaderSize]byte, ok bool) {
	var buf [2 * walHeaderSize]byte
	if !c.readMapped(&buf) {
		if n, err := c.shm.ReadAt(buf[:], 0); n != len(buf) || err != nil {
			return h, false
		}
	}
	// Copy 1 is written before copy 2 (after a barrier): copies that differ are a
	// commit in progress. isInit (byte 12) is 0 before the header is built.
	if !bytes.Equal(buf[:walHeaderSize], buf[walHeaderSize:]) || buf[12] == 0 {
		return h, false
	}
	copy(h[:], buf[:walHeaderSize])
	return h, true
}

// lookup returns the entry of m for id if it was read under the current header. It
// also returns that header, to store a fresh entry under.
func lookup[T any](c *cache, m func(*cache) map[string]T, id string) (v T, hit bool, h [walHeaderSize]byte, ok bool) {
	if c == nil {
		return v, false, h, false
	}
	if h, ok = c.header(); !ok {
		return v, false, h, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.version == h {
		v, hit = m(c)[id]
	}
	return v, hit, h, true
}

// store remembers v, read after the header h was, under h. Entries read under another
// header go: the database changed in between.
func store[T any](c *cache, m func(*cache) map[string]T, id string, v T, h [walHeaderSize]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.version != h {
		c.version = h
		clear(c.sites)
		clear(c.keys)
	}
	if len(m(c)) >= maxCached {
		clear(m(c))
	}
	m(c)[strings.Clone(id)] = v // id may be a slice of a request's body: not kept whole
}

func (c *cache) miss() {
	if c != nil {
		c.misses.Add(1)
	}
}

// advance moves the entries read under the header from to the header to: the writer
// knows that the commits between the two changed no site and no key.
func (c *cache) advance(from, to [walHeaderSize]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.version == from {
		c.version = to
	}
}

func sitesOf(c *cache) map[string]socius.Site { return c.sites }
func keysOf(c *cache) map[string]socius.Key   { return c.keys }

// cachedSite returns a copy of the cached site, or queries it.
func (s *Store) cachedSite(apiKey string, query func() (*socius.Site, error)) (*socius.Site, error) {
	v, hit, h, ok := lookup(s.cache, sitesOf, apiKey)
	if hit {
		return &v, nil
	}
	s.cache.miss()
	site, err := query()
	if err == nil && ok {
		store(s.cache, sitesOf, apiKey, *site, h)
	}
	return site, err
}

// cachedKey returns a copy of the cached key, or queries it.
func (s *Store) cachedKey(userKey string, query func() (*socius.Key, error)) (*socius.Key, error) {
	v, hit, h, ok := lookup(s.cache, keysOf, userKey)
	if hit {
		v.Methods = slices.Clone(v.Methods)
		return &v, nil
	}
	s.cache.miss()
	k, err := query()
	if err == nil && ok {
		cp := *k
		cp.Methods = slices.Clone(k.Methods)
		store(s.cache, keysOf, userKey, cp, h)
	}
	return k, err
}
