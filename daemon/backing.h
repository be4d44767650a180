/*
 * backing.h - backing objects: one per distinct file (st_dev, st_ino), each
 * with the daemon's page cache for it.
 *
 * Contract
 *
 * - The page cache of a file is a memfd holding the file's pages at the
 *   file's own offsets, sized to the file rounded up to a page. Clients map
 *   that memfd; the daemon keeps its own view of it. A page absent from the
 *   memfd raises a userfault in whichever client touches it; a page present
 *   is mapped by the kernel with no daemon round trip. Pages wholly beyond
 *   the end of the file are beyond the memfd and raise SIGBUS, as with mmap.
 * - The daemon never opens a path: a backing object is made from an fd the
 *   client opened and sent. It keeps a duplicate; a later mapper's fd that
 *   allows writing replaces a read-only one, so write-back can happen.
 * - Page states: resident (in the memfd), reading (a read is in flight:
 *   nothing reads a page twice), dirty (to be written back).
 * - backing_read() plans one fault's read with the readahead window, issues
 *   it through io.c, and reports each finished run of pages through the
 *   object's ready callback with 0 or -errno, always from the loop, never
 *   from inside backing_read(). Copies into the memfd run on io.c's copy
 *   thread, the faulting page's run before readahead: a run the kernel's
 *   page cache holds whole is spliced in (one copy); any other is read
 *   through io_uring into a bounce buffer first, with O_DIRECT when the
 *   table says so and the file allows it (no second copy in the kernel's
 *   page cache).
 * - Huge pages (backing_table_huge()): a write into an empty aligned block
 *   of the tmpfs file (up to 2M, within its size) makes one large folio of
 *   it, its other pages zeroes at once, visible to every mapper. So the
 *   file is cut in extents (2M, the last one shorter) and a read fills a
 *   whole gap of one: every missing page between its resident ones, in
 *   one write, never while another read of that gap is in flight; an
 *   extent is dropped whole, never a page of it alone.
 * - One page for one waiting thread (backing_read_place()): the table's
 *   place callback puts the page read straight into that thread's
 *   mapping (UFFDIO_COPY), which adds it to the memfd as one small page,
 *   on the huge page tmpfs too, so it needs no gap filled around it. If
 *   the callback cannot (a private mapping: the page would be that
 *   process's own), the page is written into the memfd as any other or,
 *   in a huge object, copied in through the object's placement window: a
 *   second view of it, registered with the daemon's own userfaultfd,
 *   never touched (a missing page there raises SIGBUS, never waits). If
 *   that fails too, the page is left unread: ready reports -ECANCELED,
 *   the waiters fault again, and the object reads whole gaps from then on.
 * - Single-threaded: the daemon's loop owns every object.
 */
#ifndef UPAGED_BACKING_H
#define UPAGED_BACKING_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "io.h"
#include "vma.h"

/* Pages in one huge page of a page cache on the huge page tmpfs. */
#define HUGE_PAGES 512UL
/* The smallest budget (--max-resident) a huge page cache runs under, in
   pages: 32 extents, since eviction drops whole ones. */
#define HUGE_BUDGET_MIN_PAGES (32 * HUGE_PAGES)

/* Readahead window bounds, in pages. */
#define RA_MIN_PAGES 4UL
#define RA_MAX_PAGES 256UL
/* backing_readahead() reads in pieces of at most this many pages. */
#define RA_CHUNK_PAGES 64UL

struct backing;

/* A run of pages finished reading (err 0) or failed (err -errno;
   -ECANCELED: left unread, see backing_read_place()). */
typedef void (*backing_ready_fn)(struct backing *b, unsigned long first,
				 unsigned long npages, int err);
/* Installs page pgoff (data: its bytes) for a thread waiting on it; 0,
   or -errno if it could not (-EEXIST: a page is there already). */
typedef int (*backing_place_fn)(struct backing *b, unsigned long pgoff,
				const void *data);

struct backing_stats {
	uint64_t read_ios;       /* reads issued */
	uint64_t read_pages;     /* pages read from the file */
	uint64_t ra_pages;       /* of which beyond the faulting page */
	uint64_t writeback_ios;
	uint64_t writeback_pages;
	uint64_t evicted_pages;
	uint64_t io_errors;
};

struct backing {
	struct address_space as;   /* rmap: every VMA mapping this file */
	struct backing *hash_next;
	struct backing_table *table;
	int refs;                  /* holders: VMAs and in-flight I/O */
	int fd;                    /* the file, from a client */
	int dfd;                   /* the same opened O_DIRECT, or -1 */
	bool dfd_reads;            /* what the kernel has not cached is read
				      by dfd */
	bool dfd_writes;           /* whole pages are written back by dfd */
	bool writable;             /* fd allows write-back */
	int memfd;                 /* the page cache */
	int memfd_ro;              /* the same, opened read-only: what
				      clients that may not write get */
	unsigned char *view;       /* daemon's mapping of memfd */
	unsigned char *win;        /* a huge object's placement window, or
				      MAP_FAILED (see the contract) */
	bool no_place;             /* a placement failed: whole extents */
	size_t view_reserved;      /* bytes of address space held for view */
	uint64_t size;             /* file size, bytes */
	unsigned long npages;      /* pages in memfd: size rounded up */
	bool huge;                 /* memfd is on table's huge page tmpfs */
	uint64_t *resident;        /* bitmaps, one bit per page */
	uint64_t *reading;
	uint64_t *dirty;
	uint8_t *writing;          /* write-backs of each page in flight */
	uint64_t *stale;           /* being read while the file changed */
	unsigned long nr_resident;
	unsigned long nr_dirty;
	/* Readahead: the last window read and its size, pages. */
	unsigned long ra_start;
	unsigned long ra_size;
	unsigned long ra_marker;   /* the fault layer's: page left out of its
				      last readahead, 0 for none */
	struct backing_read_io *held; /* a huge object's markers, in file
				      order: extents read but not yet copied
				      in */
	unsigned long ra_reader;   /* the fault layer's: where a sequential
				      reader of a huge object was last seen,
				      plus one; 0: none */
	int watch;                 /* inotify watch of the file, or -1 */
	char path[256];            /* for maps output, from the fd */
	struct backing_stats stats;
	void *owner;               /* the fault layer's state */
};

/*
 * Pages [first, first + npages) of b became resident (in true) or left
 * the cache (in false: evicted, truncated, dropped behind our back).
 */
typedef void (*backing_resident_fn)(struct backing *b, unsigned long first,
				    unsigned long npages, bool in);

/* All objects of one daemon, found by (dev, ino). */
struct backing_table {
	struct backing **buckets;
	unsigned long nbuckets;
	unsigned long count;
	struct io_ctx *io;
	backing_ready_fn ready;
	backing_place_fn place;    /* optional: backing_read_place() */
	backing_resident_fn resident_changed; /* optional */
	void (*object_gone)(struct backing *b); /* optional: being freed */
	unsigned long ra_cap;      /* most pages one readahead reads, 0: any */
	size_t reading_pages;      /* reads in flight, pages, over objects */
	size_t held_pages;         /* of which held markers */
	size_t resident_pages;     /* sum over objects */
	bool direct;               /* read what is not cached with O_DIRECT */
	int huge_mnt;              /* a directory on a tmpfs with huge pages,
				      or -1 */
	int watch_fd;              /* inotify: files changed, or -1 */
	int win_uffd;              /* the daemon's own userfaultfd for the
				      placement windows, or -1 */
	void *bounces;             /* idle read buffers, a list through them */
	unsigned int nbounces;
	const char *fail_reads_of; /* test hook: every read of the file at
				      this path fails with EIO */
};

int backing_table_init(struct backing_table *t, struct io_ctx *io,
		       backing_ready_fn ready);
/*
 * Page caches made from now on live on a tmpfs whose files get huge pages:
 * a client then maps 2M with one fault. The tmpfs is dir's (which must be
 * one, mounted huge=within_size) or, dir NULL, one of the table's own, a
 * mount in no namespace. 0, or -errno (memfds stay): -ENOTTY if dir is
 * not a tmpfs.
 */
int backing_table_huge(struct backing_table *t, const char *dir);
/* Frees every object; dirty pages must have been written back. */
void backing_table_exit(struct backing_table *t);

/*
 * The object for the file behind fd, made on first use (the fd is
 * duplicated); a reference is taken. -errno if fd is not a regular file.
 */
int backing_get(struct backing_table *t, int fd, struct backing **out);
void backing_hold(struct backing *b);
void backing_put(struct backing *b);

/*
 * Files that change (a truncation by another process, say) are reported
 * on an inotify descriptor from now on: every object made after this
 * watches its file. The descriptor, or -errno.
 */
int backing_table_watch(struct backing_table *t);

/* Reads what that descriptor has: changed(b) for each object whose file
   changed (all of them if events were lost). */
void backing_watch_read(struct backing_table *t,
			void (*changed)(struct backing *b));

/*
 * Re-reads the file's size; grows or shrinks the memfd to match. A file
 * cut short inside a page gets the rest of that page cleared, as the
 * kernel clears it.
 */
int backing_refresh_size(struct backing *b);

static inline bool page_test(const uint64_t *map, unsigned long i)
{
	return map[i / 64] >> (i % 64) & 1;
}

/* Page states, pgoff below npages. */
static inline bool backing_resident(const struct backing *b,
				    unsigned long pgoff)
{
	return page_test(b->resident, pgoff);
}

static inline bool backing_reading(const struct backing *b,
				   unsigned long pgoff)
{
	return page_test(b->reading, pgoff);
}

/*
 * Makes page pgoff (and a readahead window after it) resident. Returns 1
 * if the page is already resident, 0 if a read is now (or was already) in
 * flight — the ready callback will name it — or -errno (-EFAULT: beyond
 * the end of the file).
 */
int backing_read(struct backing *b, unsigned long pgoff);

/*
 * Page pgoff alone, no readahead (MADV_RANDOM), for a thread waiting on
 * it: as backing_read(). The page goes through the table's place callback
 * when it is read (see the contract).
 */
int backing_read_place(struct backing *b, unsigned long pgoff);
/* Is page pgoff in the memfd now (a client may have punched it)? */
bool backing_in_memfd(const struct backing *b, unsigned long pgoff);

/* The object for (dev, ino) if there is one; no reference is taken. */
struct backing *backing_find(struct backing_table *t, unsigned long dev,
			     unsigned long ino);

/* The end of the extent (backing.h) that starts at page lo. */
unsigned long backing_extent_end(const struct backing *b, unsigned long lo);

/* Page pgoff left the memfd behind our back: not resident any more. */
void backing_forget(struct backing *b, unsigned long pgoff);

/*
 * A huge object's readahead marker. A marker is a page left out of a
 * readahead, so that the reader's fault there starts the next one; in a
 * huge object no page can be left out alone (its extent is one large
 * folio: the page would read as zeroes). So the marker is the whole
 * extent at pgoff, read now into a buffer and copied in only once
 * released. 0; -EEXIST: part of that extent is in or being read;
 * -EINVAL: not a huge object, or past its end; or the read's -errno.
 */
int backing_hold_marker(struct backing *b, unsigned long pgoff);

/*
 * b's markers before page end go into the cache: now, or as soon as
 * their reads end; urgent: ahead of the readahead's copies. Nothing else
 * releases a marker (ULONG_MAX: all of them).
 */
void backing_release_markers(struct backing *b, unsigned long end,
			     bool urgent);

/* Is pgoff in one of b's markers? If so, it goes in, urgent, with those
   before it. */
bool backing_marker_hit(struct backing *b, unsigned long pgoff);

/*
 * Starts reading the pages of [first, first + npages) that are neither
 * resident nor being read, leaving the readahead window alone: the
 * caller's own readahead. 0, or -errno if nothing could be issued.
 */
int backing_readahead(struct backing *b, unsigned long first,
		      unsigned long npages);

/*
 * The file changed behind the page cache (MS_INVALIDATE): pages of
 * [first, first + npages) being read are read again when their read ends.
 */
void backing_mark_stale(struct backing *b, unsigned long first,
			unsigned long npages);

/* Marks pages dirty (the client wrote through a shared mapping). */
void backing_mark_dirty(struct backing *b, unsigned long first,
			unsigned long npages);
/*
 * Writes dirty pages of [first, first + npages) back to the file; done is
 * called once when all of them are written (0) or one failed (-errno).
 */
int backing_writeback(struct backing *b, unsigned long first,
		      unsigned long npages, io_done_fn done, void *arg);
/*
 * Length of the run of resident, clean pages neither being read nor being
 * written back that starts at page i, stopping at end (0 if page i is not
 * one): the pages that may be dropped.
 */
unsigned long backing_clean_run(const struct backing *b, unsigned long i,
				unsigned long end);
/*
 * Drops clean resident pages from the memfd (every mapper loses them); in
 * a huge object, the extents wholly in the range with no page dirty,
 * being read or being written back.
 */
int backing_evict(struct backing *b, unsigned long first,
		  unsigned long npages);

#endif
