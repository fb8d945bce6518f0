package store

import (
	"sync"

	"modernc.org/libc"
)

// keepSQLiteHeapPages keeps pages of the SQLite heap's larger size classes
// mapped for the life of the process.
//
// modernc.org/sqlite allocates through modernc.org/libc, whose allocator
// (modernc.org/memory) carves each size class out of 64 KiB pages from
// mmap and unmaps a page as soon as its last block is freed. Every
// "x IN (SELECT ...)" that SQLite evaluates builds a 10,000-byte Bloom
// filter for the subquery (in the 16 KiB class, three to a page) and
// frees it when the statement ends: with no other block of that class
// alive, each such statement mapped a page, faulted it in and unmapped it,
// a tenth of a post's CPU on SQLite (profile, bench/load -scenario post).
// One block kept per page holds the page, so its other blocks are reused
// without system calls. No allocator option does this, and SQLite's own
// (memsys5) is not compiled into modernc's build.
var keepSQLiteHeapPages = sync.OnceFunc(func() {
	tls := libc.NewTLS()
	defer tls.Close()
	// Classes of 1 to 16 KiB: the 16 KiB one on two pages (one per
	// connection statement running at once, four connections).
	for size, pages := 1<<10, 1; size <= 16<<10; size <<= 1 {
		if size == 16<<10 {
			pages = 2
		}
		keepPages(tls, size, pages)
	}
})

// keepPages allocates blocks of size until they span pages pages and
// frees all but one block per page.
func keepPages(tls *libc.TLS, size, pages int) {
	const pageMask = 64<<10 - 1 // modernc.org/memory's page size
	held := map[uintptr]bool{}
	var spare []uintptr
	for len(held) < pages {
		p := libc.Xmalloc(tls, libc.Tsize_t(size))
		if p == 0 {
			break
		}
		if pg := p &^ pageMask; !held[pg] {
			held[pg] = true
		} else {
			spare = append(spare, p)
		}
	}
	for _, p := range spare {
		libc.Xfree(tls, p)
	}
}
