/*
 * policy_file.c - file-backed paging: the daemon's backing objects, shared
 * file mappings (file_vm_ops), and what both file policies share: the fault
 * path, waiters, write-back, msync and the reverse-map query. Private file
 * mappings are policy_cow.c.
 *
 * Contract
 *
 * - A client maps the object's memfd page cache over its reservation and
 *   the daemon registers the range MISSING (see proto.h, MAP_COMMIT). A
 *   fault means the page is absent from the memfd: backing_read() starts
 *   the read (with readahead), the faulting thread becomes a waiter, and
 *   when its run is filled it is woken (UFFDIO_WAKE) into the page cache
 *   page, or poisoned (SIGBUS) if the read failed. Faults on a page already
 *   being read join the waiters; nothing is read twice. A fault past the
 *   end of the file is woken into the kernel's own SIGBUS (the memfd is
 *   no longer than the file).
 * - Dirty tracking (file.h): a tracked writable shared mapping starts
 *   write-protected, so the first write to each page is a WP fault that
 *   marks it dirty (reclaim.c), and every write-back first protects the
 *   pages again in every writer. An untracked one (a client whose
 *   userfaultfd lacks write-protect for shared memory) may write a present
 *   page unseen: every resident page it covers counts as possibly written
 *   wherever that matters (msync, and where such a VMA or a part of it
 *   stops being writable: unmap, mprotect, mremap, close, shutdown). That
 *   costs extra writes of unchanged pages, never a lost one. Dirty bits
 *   that fail to reach the file stay set.
 * - msync(MS_SYNC) replies once its pages and every write-back started
 *   before it are on the file (and fsynced); MS_ASYNC once they are queued.
 * - Every VMA holds a reference on its object (open/close), every read or
 *   write-back in flight another (backing.c).
 * - Access hints: MADV_RANDOM reads the faulting page alone; MADV_
 *   SEQUENTIAL starts at the largest readahead window; the rest is
 *   reclaim.c's.
 * - Single-threaded: the daemon's loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "file.h"

/* A thread waiting for page pgoff of b, at addr in u. */
struct file_waiter {
	struct backing *b;
	unsigned long pgoff;
	struct umm *u;
	unsigned long addr;
	bool write;   /* a write through a tracked writable shared mapping */
};

/* An msync waiting for its write-backs (and fsyncs) to end. */
struct file_sync {
	struct client *c;          /* NULL once the connection is gone */
	struct upage_hdr req;
	int pending;
	int err;
	bool fsync;                /* MS_SYNC: fsync each file afterwards */
	struct file_sync *next, *prev;
};

struct file_sync_part {
	struct file_sync *s;
	struct backing *b;         /* held */
};

static struct io_ctx file_io;
static struct backing_table file_table;
static bool file_ready_ok;
static ev_io file_watch_w;   /* the table's inotify descriptor */
static struct file_waiter *waiters;
static size_t nwaiters, waiters_cap;
static struct file_sync *syncs;

static void file_check_size(struct backing *b);

/*
 * A fault that must wait for I/O to end before it can be served (a read
 * of its huge page's gap in flight, or write-backs holding the cache over
 * its budget) is parked: a waiter with no object, woken at the next end
 * of a read or of an eviction's write-back, to fault again. One of them
 * is always in flight when a fault is parked, so none waits for ever;
 * the loop sleeps meanwhile instead of retrying.
 */
void file_unpark(void)
{
	size_t i = 0;

	while (i < nwaiters) {
		if (waiters[i].b) {
			i++;
			continue;
		}
		fault_wake(waiters[i].u, waiters[i].addr, PAGE_SIZE);
		waiters[i] = waiters[--nwaiters];
	}
}

static void file_huge_more(struct backing *b);

/* A run of b's pages is filled (err 0) or failed: release its waiters. */
static void file_ready(struct backing *b, unsigned long first,
		       unsigned long npages, int err)
{
	size_t i = 0;

	file_unpark();
	while (i < nwaiters) {
		struct file_waiter *w = &waiters[i];

		if (w->b != b || w->pgoff < first || w->pgoff >= first + npages) {
			i++;
			continue;
		}
		if (err == -ECANCELED) {
			fault_wake(w->u, w->addr, PAGE_SIZE); /* faults again */
		} else if (err) {
			log_warn("%s: page %lu: read failed: %s", b->path,
				 w->pgoff, strerror(-err));
			fault_poison(w->u, w->addr, PAGE_SIZE);
		} else if (w->write && backing_resident(b, w->pgoff)) {
			/* It writes as soon as it runs: dirty now, and
			   writable now, rather than after a WP fault. */
			backing_mark_dirty(b, w->pgoff, 1);
			if (fault_protect(w->u, w->addr, PAGE_SIZE, false) < 0)
				fault_wake(w->u, w->addr, PAGE_SIZE);
		} else {
			fault_wake(w->u, w->addr, PAGE_SIZE);
		}
		*w = waiters[--nwaiters];
	}
	if (!err)
		file_huge_more(b);
}

/*
 * Read-modify-write prediction. A random read of a tracked writable
 * mapping is put in write-protected, so that its write is seen: a second
 * fault, a round trip to the daemon. A process whose reads are written
 * right after (a database updating records) gets its pages writable and
 * dirty at once instead: a page it then does not write is only written
 * back for nothing. The prediction is checked on every RMW_SAMPLE-th page,
 * which is still put in write-protected and watched; a watched page not
 * written by the time the next one is watched lowers the score.
 */
#define RMW_SCORE_MAX 8
#define RMW_SCORE_ON 4
#define RMW_SAMPLE 8

/* Write-protect the page for a read fault in u at addr (else writable,
   and the caller marks it dirty)? */
static bool file_rmw_protect(struct umm *u, unsigned long addr)
{
	if (u->rmw_score >= RMW_SCORE_ON && ++u->rmw_placed % RMW_SAMPLE)
		return false;
	if (u->rmw_watched && !u->rmw_watched_written)
		u->rmw_score = u->rmw_score > 2 ? u->rmw_score - 2 : 0;
	u->rmw_watched = addr;
	u->rmw_watched_written = false;
	return true;
}

void file_rmw_written(struct umm *u, unsigned long addr)
{
	if (addr != u->rmw_watched || u->rmw_watched_written)
		return;
	u->rmw_watched_written = true;
	if (u->rmw_score < RMW_SCORE_MAX)
		u->rmw_score++;
}

/*
 * The place callback (backing.h): page pgoff, just read, goes straight
 * into the mapping of a thread waiting for it, if one maps it shared (a
 * private mapping would get a private copy). UFFDIO_COPY adds it to the
 * memfd, maps it and wakes that thread: no write into the memfd, no
 * second fault. A tracked mapping gets it write-protected for a read, so
 * that its first write is still seen (unless a write is predicted, see
 * above), and writable and dirty for a write. The waiter is done; the
 * others are woken by file_ready() and find the page.
 */
static int file_place(struct backing *b, unsigned long pgoff,
		      const void *data)
{
	int r = -ENOENT;

	for (size_t i = 0; i < nwaiters; i++) {
		struct file_waiter *w = &waiters[i];
		unsigned long addr = w->addr & ~(PAGE_SIZE - 1);
		struct vm_area_struct *vma;
		bool wp, dirty = w->write;

		if (w->b != b || w->pgoff != pgoff)
			continue;
		vma = find_vma(&w->u->mm, addr);
		if (!vma || vma->vm_start > addr ||
		    !vma_maps_cache_shared(vma))
			continue;
		wp = !w->write && umm_tracks(w->u) && vma_writes_shared(vma);
		if (wp && !file_rmw_protect(w->u, addr))
			wp = false, dirty = true;
		r = fault_fill_page(w->u, addr, data, wp);
		if (r == 0) {
			if (dirty)
				backing_mark_dirty(b, pgoff, 1);
			*w = waiters[--nwaiters];
			return 0;
		}
		if (r == -EEXIST)
			return r;
	}
	return r;
}

static void file_watch_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	file_sync_sizes();
}

int file_init(struct ev_loop *loop)
{
	int r = io_init(&file_io, loop, 256);

	if (r < 0)
		return r;
	r = backing_table_init(&file_table, &file_io, file_ready);
	if (r < 0) {
		io_exit(&file_io);
		return r;
	}
	file_table.place = file_place;
	/* $UPAGED_DIRECT_IO=1: O_DIRECT reads of what the kernel has not
	   cached, so that the file's pages live once, in our page cache. */
	const char *d = getenv("UPAGED_DIRECT_IO");

	file_table.direct = d && !strcmp(d, "1");
	/* $UPAGED_FAIL_READS_OF=PATH: a test hook, see backing.c. */
	file_table.fail_reads_of = getenv("UPAGED_FAIL_READS_OF");
	r = reclaim_init(loop, &file_table, &file_io,
			 config.max_resident_pages);
	if (r < 0) {
		backing_table_exit(&file_table);
		io_exit(&file_io);
		return r;
	}
	/* Huge pages are dropped only whole: not under a small budget. */
	if (config.huge_pages && (!config.max_resident_pages ||
				  config.max_resident_pages >=
					  HUGE_BUDGET_MIN_PAGES)) {
		const char *dir = config.cache_dir[0] ? config.cache_dir : NULL;

		r = backing_table_huge(&file_table, dir);
		if (r == -ENOTTY)
			log_warn("page cache in small pages: %s is not a tmpfs",
				 dir);
		else if (r < 0 && dir)
			log_warn("page cache in small pages: %s: %s", dir,
				 strerror(-r));
		else if (r < 0)
			log_info("page cache in small pages: a tmpfs of our "
				 "own: %s", strerror(-r));
	}
	/* A file truncated by another process is seen at once, not at the
	   next fault: its lost pages leave every mapper then. */
	r = backing_table_watch(&file_table);
	if (r >= 0) {
		ev_io_init(&file_watch_w, file_watch_cb, r, EV_READ);
		ev_io_start(loop, &file_watch_w);
	} else {
		log_info("file sizes are checked at faults only: inotify: %s",
			 strerror(-r));
	}
	file_ready_ok = true;
	return 0;
}

void file_sync_sizes(void)
{
	if (file_ready_ok && file_table.watch_fd >= 0)
		backing_watch_read(&file_table, file_check_size);
}

bool file_wait(unsigned long usec)
{
	return file_ready_ok && nwaiters && io_wait(&file_io, usec);
}

/*
 * Worth polling for: a thread waits for a read and the copy thread is
 * idle (a long copy keeps a core busy, which the waiting client then needs
 * more than the daemon does).
 */
bool file_waiting(void)
{
	return nwaiters != 0 && !file_io.copying;
}

/* Every held marker goes into the cache: nothing else would release it. */
static void file_release_markers(void)
{
	for (unsigned long i = 0; i < file_table.nbuckets; i++)
		for (struct backing *b = file_table.buckets[i]; b;
		     b = b->hash_next)
			backing_release_markers(b, ULONG_MAX, false);
}

void file_quiesce(void)
{
	if (!file_ready_ok)
		return;
	file_release_markers();
	io_drain(&file_io);
}

/* After every mm is gone: their closes queued the last write-backs. */
void file_exit(void)
{
	if (!file_ready_ok)
		return;
	file_quiesce();
	for (unsigned long i = 0; i < file_table.nbuckets; i++)
		for (struct backing *b = file_table.buckets[i]; b;
		     b = b->hash_next)
			if (b->nr_dirty)
				log_err("%s: %lu dirty pages not written back",
					b->path, b->nr_dirty);
	ev_io_stop(file_io.loop, &file_watch_w);
	reclaim_exit();
	backing_table_exit(&file_table);
	io_exit(&file_io);
	free(waiters);
	waiters = NULL;
	nwaiters = waiters_cap = 0;
	file_ready_ok = false;
}

/* u is going away: its threads need no more wake-ups. */
void file_umm_gone(struct umm *u)
{
	size_t i = 0;

	while (i < nwaiters) {
		if (waiters[i].u == u)
			waiters[i] = waiters[--nwaiters];
		else
			i++;
	}
}

void file_client_gone(struct client *c)
{
	for (struct file_sync *s = syncs; s; s = s->next)
		if (s->c == c)
			s->c = NULL;
}

static int file_add_waiter(struct backing *b, unsigned long pgoff,
			   struct umm *u, unsigned long addr, bool write)
{
	if (nwaiters == waiters_cap) {
		size_t cap = waiters_cap ? 2 * waiters_cap : 64;
		void *p = realloc(waiters, cap * sizeof(*waiters));

		if (!p)
			return -ENOMEM;
		waiters = p;
		waiters_cap = cap;
	}
	waiters[nwaiters++] = (struct file_waiter){ b, pgoff, u, addr, write };
	return 0;
}

/* Parks a fault (see file_unpark()); -EAGAIN (fault.c retries) if it
   cannot be parked. */
static int file_park(struct umm *u, unsigned long addr)
{
	return file_add_waiter(NULL, 0, u, addr, false) < 0 ? -EAGAIN : 0;
}

/* Follows the file's size: pages past a new end must raise SIGBUS. */
static void file_check_size(struct backing *b)
{
	struct stat st;

	if (fstat(b->fd, &st) == 0 && (uint64_t)st.st_size != b->size) {
		int r = backing_refresh_size(b);

		if (r < 0)
			log_warn("%s: size change: %s", b->path, strerror(-r));
	}
}

/*
 * Pages read around a fault that follows no other: the kernel reads the
 * device's readahead size (read_ahead_kb) around an mmap fault, and so do
 * we; its default, 128 KiB, where the device does not say. At most 16 MiB.
 */
#define RA_AROUND_PAGES 32UL
#define RA_AROUND_MAX 4096UL

static unsigned long file_ra_around(const struct backing *b)
{
	static const char *const where[] = {
		"/sys/dev/block/%u:%u/queue/read_ahead_kb",
		"/sys/dev/block/%u:%u/../queue/read_ahead_kb", /* a partition */
	};
	/* The last device asked about: one read of sysfs per device. */
	static unsigned long dev = ~0UL, pages;
	unsigned long kb, p;
	char path[96];
	FILE *f;

	if (b->as.dev == dev)
		return pages;
	pages = RA_AROUND_PAGES;
	for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
		snprintf(path, sizeof(path), where[i], major(b->as.dev),
			 minor(b->as.dev));
		f = fopen(path, "re");
		if (!f)
			continue;
		if (fscanf(f, "%lu", &kb) == 1)
			pages = kb / (PAGE_SIZE / 1024); /* 0: the least */
		fclose(f);
		break;
	}
	/* A power of two, so that windows never overlap. */
	for (p = RA_MIN_PAGES; p * 2 <= pages && p < RA_AROUND_MAX; p *= 2)
		;
	pages = p;
	dev = b->as.dev;
	return pages;
}

/*
 * A fault that follows nothing, its page already asked for: the rest of
 * the pages around it. A reader going on from their end is taken for a
 * sequential one.
 */
static void file_read_around(struct backing *b, unsigned long pgoff)
{
	unsigned long n = file_ra_around(b), start;

	/*
	 * No more than one readahead may read (a budget's share), nor more
	 * than a sixteenth of the file: where inotify cannot watch the file,
	 * a truncation by another process is seen only at a fault, and pages
	 * read but never touched would hide it from their readers, where the
	 * kernel gives SIGBUS.
	 */
	while (n > RA_MIN_PAGES && (n > b->npages / 16 ||
				    (b->table->ra_cap && n > b->table->ra_cap)))
		n /= 2;
	start = pgoff & ~(n - 1);
	if (backing_readahead(b, start, n) == 0) {
		b->ra_start = pgoff;
		b->ra_size = start + n - pgoff;
		if (b->ra_size < RA_MIN_PAGES)
			b->ra_size = RA_MIN_PAGES;
	}
}

/*
 * A huge page cache's readahead (backing_hold_marker() says why its
 * marker is a whole extent) goes in windows the size of the device's
 * readahead, at least 8 MiB, but no more than a budget allows.
 */
static unsigned long file_huge_window(struct backing *b)
{
	unsigned long n = file_ra_around(b), cap = b->table->ra_cap;

	if (n < 4 * HUGE_PAGES)
		n = 4 * HUGE_PAGES;
	if (cap && n > cap)
		n = cap > HUGE_PAGES ? cap & ~(HUGE_PAGES - 1) : HUGE_PAGES;
	return n;
}

/* Windows read ahead of a huge object's sequential reader, at most. */
#define RA_HUGE_WINDOWS 4

/*
 * The window from the first page past from that is neither in nor being
 * read, if that is before limit. Its first whole extent is held as its
 * marker: every window has one, so the reader cannot go past the last
 * window read without being seen.
 */
static void file_huge_window_read(struct backing *b, unsigned long from,
				  unsigned long limit)
{
	unsigned long n = file_huge_window(b), next = from, m;
	int r;

	while (next < b->npages && next < limit &&
	       (backing_resident(b, next) || backing_reading(b, next)))
		next++;
	if (next >= b->npages || next >= limit)
		return; /* nothing to read, or far enough ahead */
	m = (next + HUGE_PAGES - 1) & ~(HUGE_PAGES - 1);
	if (backing_readahead(b, next, m - next) < 0)
		return;
	r = backing_hold_marker(b, m);
	if (r == 0)
		backing_readahead(b, m + HUGE_PAGES, next + n - m - HUGE_PAGES);
	else if (r == -EEXIST)
		backing_readahead(b, m, next + n - m); /* with no marker */
}

/*
 * A sequential reader of a huge object faulted at pgoff (at a marker,
 * mostly): the next window, unless two are being read already. The
 * reader faults at a window's marker as soon as it is through the window
 * before; and whenever a read ends, file_huge_more() gives the disk the
 * next window at once, up to RA_HUGE_WINDOWS ahead of where the reader
 * was last seen. On this VM the disk answers the reads in flight all
 * together, so a window asked for only at the reader's fault left it
 * idle for the time the reader took to get there.
 */
static void file_readahead_huge(struct backing *b, unsigned long pgoff)
{
	backing_release_markers(b, pgoff, false); /* gone past */
	b->ra_reader = pgoff + 1;
	file_huge_window_read(b, pgoff + b->ra_size,
			      pgoff + 2 * file_huge_window(b));
}

/* A read of b ended: more for its sequential reader, if it is not far
   enough ahead. */
static void file_huge_more(struct backing *b)
{
	unsigned long from = b->ra_reader - 1;

	if (b->huge && b->ra_reader)
		file_huge_window_read(b, from, from + RA_HUGE_WINDOWS *
						       file_huge_window(b));
}

/*
 * Readahead beyond backing_read()'s window, which covers the faulting page
 * and what follows. A reader whose faults follow each other gets the next
 * window read at once, less one marker page in its middle: the reader
 * takes no fault until it reaches the marker (pages in the cache are mapped
 * by the kernel alone), and its fault there starts the window after, well
 * before it runs out. Copies run on io.c's thread, the faulting page's
 * first, so this never delays the faulting thread's wake-up.
 */
static void file_readahead(struct backing *b, unsigned long pgoff)
{
	unsigned long s = b->ra_size, next = pgoff + s, ahead = 2 * s, m;

	if (b->ra_start != pgoff || s <= RA_MIN_PAGES)
		return; /* backing_read() planned nothing, or no sequence */
	if (b->huge) {
		file_readahead_huge(b, pgoff);
		return;
	}
	/* Two windows ahead: a disk keeps several reads in flight. */
	m = next + ahead / 2;
	if (backing_readahead(b, next, m - next) == 0 &&
	    backing_readahead(b, m + 1, ahead - (m - next) - 1) == 0)
		b->ra_marker = m;
}

/*
 * MADV_RANDOM: the faulting page alone, as the kernel reads for such a
 * mapping; the window of other readers of the file is left as it is.
 */
static int file_fault_one(struct backing *b, struct umm *u,
			  unsigned long pgoff, unsigned long addr, bool write)
{
	int r;

	if (backing_resident(b, pgoff) && !backing_in_memfd(b, pgoff))
		backing_forget(b, pgoff); /* dropped behind our back */
	/* The page alone, straight into the mapping where it can be. */
	r = backing_read_place(b, pgoff);
	if (r == -EAGAIN)
		return file_park(u, addr); /* a huge page's read ends first */
	if (r == 1 || r == -EFAULT) {
		fault_wake(u, addr, PAGE_SIZE);
	} else if (r < 0) {
		log_warn("%s: page %lu: %s", b->path, pgoff, strerror(-r));
		fault_poison(u, addr, PAGE_SIZE);
	} else if (file_add_waiter(b, pgoff, u, addr, write) < 0) {
		fault_wake(u, addr, PAGE_SIZE); /* refaults later */
	}
	return 0;
}

/* The fault of both file policies. */
int file_fault(struct vm_area_struct *vma, struct vm_fault *vmf)
{
	struct backing *b = backing_of(vma);
	struct umm *u = fault_umm(vmf);
	unsigned long addr = vmf->address;
	bool write = (vmf->flags & FAULT_FLAG_WRITE) && umm_tracks(u) &&
		     vma_writes_shared(vma);
	bool around = false;
	int r;

	file_check_size(b);
	if (vmf->pgoff >= b->npages) {
		struct stat st;

		/* Past the end: the retried access meets the memfd's end,
		   which nothing may have moved (it would fault for ever). */
		if (fstat(b->memfd, &st) == 0 &&
		    (uint64_t)st.st_size > b->npages * PAGE_SIZE &&
		    ftruncate(b->memfd, (off_t)(b->npages * PAGE_SIZE)) < 0)
			log_warn("%s: cannot shrink the cache: %s", b->path,
				 strerror(errno));
		fault_wake(u, addr, PAGE_SIZE);
		return 0;
	}
	if (!backing_resident(b, vmf->pgoff) && !backing_reading(b, vmf->pgoff) &&
	    reclaim_must_wait())
		return file_park(u, addr);
	reclaim_fault_hint(vma, vmf->pgoff);
	if (vma->vm_flags & VM_RAND_READ)
		return file_fault_one(b, u, vmf->pgoff, addr, write);
	if ((vma->vm_flags & VM_SEQ_READ) &&
	    !(b->ra_size && vmf->pgoff >= b->ra_start &&
	      vmf->pgoff <= b->ra_start + b->ra_size)) {
		/* MADV_SEQUENTIAL: the largest window from the first fault
		   (backing_ra_window() doubles this). */
		b->ra_start = vmf->pgoff;
		b->ra_size = RA_MAX_PAGES / 2;
	}
	if ((b->ra_marker && vmf->pgoff == b->ra_marker) ||
	    backing_marker_hit(b, vmf->pgoff)) {
		/* The reader caught up: its window goes on from here. */
		b->ra_start = vmf->pgoff;
		b->ra_marker = 0;
	} else if (!(b->ra_size && vmf->pgoff >= b->ra_start &&
		     vmf->pgoff <= b->ra_start + b->ra_size) &&
		   !backing_resident(b, vmf->pgoff) &&
		   !backing_reading(b, vmf->pgoff)) {
		/* A fault that follows nothing: read around it, as the
		   kernel does for mmap, its own page first. */
		around = true;
		b->ra_reader = 0;
	}
	for (int tries = 0; tries < 2; tries++) {
		r = backing_read(b, vmf->pgoff);
		if (r == 0 && around)
			file_read_around(b, vmf->pgoff);
		else if (r == 0)
			file_readahead(b, vmf->pgoff);
		if (r != 1)
			break;
		if (!backing_in_memfd(b, vmf->pgoff)) {
			/* Dropped behind our back (MADV_REMOVE): read again. */
			backing_forget(b, vmf->pgoff);
			continue;
		}
		/*
		 * Present, yet it faulted: the fill raced with the fault, or
		 * the client's mapping here is not our memfd. The second
		 * would fault for ever; it gets SIGBUS instead.
		 */
		if (u->file_stray_addr == addr && ++u->file_stray_count >= 3) {
			log_warn("pid %d: %#lx is not the page cache it "
				 "committed", u->pid, addr);
			fault_poison(u, addr, PAGE_SIZE);
			u->file_stray_count = 0;
			return 0;
		}
		if (u->file_stray_addr != addr) {
			u->file_stray_addr = addr;
			u->file_stray_count = 1;
		}
		fault_wake(u, addr, PAGE_SIZE);
		return 0;
	}
	if (r == 0) {
		if (file_add_waiter(b, vmf->pgoff, u, addr, write) < 0)
			fault_wake(u, addr, PAGE_SIZE); /* refaults later */
		/* A thread waits on the disk: its read goes now, not when
		   the loop next sleeps. */
		io_flush(&file_io);
		return 0;
	}
	if (r == 1) {
		fault_wake(u, addr, PAGE_SIZE);
		return 0;
	}
	if (r == -EFAULT) {
		fault_wake(u, addr, PAGE_SIZE);
		return 0;
	}
	if (r == -EAGAIN)
		return file_park(u, addr); /* a huge page's read ends first */
	log_warn("%s: page %lu: %s", b->path, vmf->pgoff, strerror(-r));
	fault_poison(u, addr, PAGE_SIZE);
	return 0;
}

void file_vma_open(struct vm_area_struct *vma)
{
	backing_hold(backing_of(vma));
}

void file_mark_written(struct backing *b, unsigned long first,
			      unsigned long n)
{
	unsigned long end = first + n, i;

	if (end > b->npages)
		end = b->npages;
	for (i = first; i < end; i++) {
		if (!(i % 64) && !b->resident[i / 64]) {
			i += 63;
			continue;
		}
		if (page_test(b->resident, i) && !page_test(b->dirty, i))
			backing_mark_dirty(b, i, 1);
	}
}

static void file_wb_done(void *arg, ssize_t res)
{
	struct backing *b = arg;

	if (res < 0)
		log_err("%s: write-back failed: %s (pages stay dirty)",
			b->path, strerror((int)-res));
}

/*
 * The part [start, end) of a writable shared vma stops being writable
 * there (unmap, mprotect, mremap, close): what it may have written goes
 * to the file now.
 */
static void file_vma_release(struct vm_area_struct *vma, unsigned long start,
			     unsigned long end)
{
	struct backing *b = backing_of(vma);
	unsigned long first, n;
	int r;

	if (!vma_writes_shared(vma) || start >= end)
		return;
	first = vma_pgoff_at(vma, start);
	n = (end - start) >> PAGE_SHIFT;
	/* A tracked VMA's writes are all in the dirty bits already. */
	if (!umm_tracks(umm_of(vma)))
		file_mark_written(b, first, n);
	if (!b->nr_dirty)
		return;
	/* Other writers of these pages: protected before the bits clear. */
	reclaim_protect(b, first, n, vma);
	r = backing_writeback(b, first, n, file_wb_done, b);
	if (r < 0)
		log_err("%s: write-back: %s", b->path, strerror(-r));
}

void file_vma_close(struct vm_area_struct *vma)
{
	struct backing *b = backing_of(vma);

	file_vma_release(vma, vma->vm_start, vma->vm_end);
	/* Its object may be going: nothing more is read for it unasked. */
	backing_release_markers(b, ULONG_MAX, false);
	b->ra_reader = 0;
	backing_put(b);
}

void file_range_release(struct umm *u, unsigned long addr, unsigned long len)
{
	unsigned long end = addr + len;
	struct vm_area_struct *vma = find_vma_intersection(&u->mm, addr, end);

	for (; vma && vma->vm_start < end; vma = vma_next(vma))
		file_vma_release(vma, vma->vm_start > addr ? vma->vm_start : addr,
				 vma->vm_end < end ? vma->vm_end : end);
}

/* The access a client's fd gives, as MAP_FMODE_*; -errno if none. */
static int file_fmode(int fd)
{
	struct statvfs sv;
	int fl = fcntl(fd, F_GETFL), mode = 0;

	if (fl < 0)
		return -errno;
	if (fl & O_PATH)
		return -EBADF;
	if ((fl & O_ACCMODE) != O_WRONLY)
		mode |= MAP_FMODE_READ;
	if ((fl & O_ACCMODE) != O_RDONLY)
		mode |= MAP_FMODE_WRITE;
	if (fstatvfs(fd, &sv) == 0 && !(sv.f_flag & ST_NOEXEC))
		mode |= MAP_FMODE_EXEC;
	return mode;
}

long file_map(struct umm *u, const struct upage_map *m, int fd, int *memfd,
	      int *how)
{
	unsigned long len = PAGE_ALIGN(m->len);
	int type = m->flags & MAP_TYPE;
	struct vm_area_struct *vma;
	struct mmap_req req;
	struct backing *b;
	long addr;
	int fmode, r;

	*memfd = -1;
	if (m->off & (PAGE_SIZE - 1))
		return -EINVAL;
	if ((m->off >> PAGE_SHIFT) + (len >> PAGE_SHIFT) < (len >> PAGE_SHIFT))
		return -EOVERFLOW;
	fmode = file_fmode(fd);
	if (fmode < 0)
		return fmode;
	if (!(fmode & MAP_FMODE_READ))
		return -EACCES;
	r = backing_get(&file_table, fd, &b);
	if (r < 0)
		return r;
	memset(&req, 0, sizeof(req));
	req.addr = m->addr;
	req.len = len;
	req.prot = m->prot;
	req.flags = m->flags;
	req.pgoff = m->off >> PAGE_SHIFT;
	req.obj = &b->as;
	req.ops = type == MAP_PRIVATE ? &cow_vm_ops : &file_vm_ops;
	req.fmode = (unsigned int)fmode;
	if (b->huge)
		req.align = HUGE_PAGES * PAGE_SIZE;
	addr = do_mmap(&u->mm, &req, &vma);
	/*
	 * The kernel registers only ranges that may be written: a shared
	 * mapping that never can is mapped as a private one of the read-only
	 * memfd, which reads the same pages and, written behind our back,
	 * would copy rather than reach anyone else.
	 */
	if (addr >= 0)
		*memfd = file_memfd(vma, how);
	backing_put(b); /* the VMA holds its own */
	return addr;
}

int file_memfd(const struct vm_area_struct *vma, int *how)
{
	struct backing *b = backing_of(vma);

	if (vma_maps_cache_shared(vma)) {
		*how = MAP_SHARED;
		return b->memfd;
	}
	*how = MAP_PRIVATE;
	return b->memfd_ro;
}

/*
 * Registers [addr, addr + len) of u, write-protected throughout when wp
 * (file.h: tracked); if that fails, u is untracked and the range is
 * registered for missing pages only.
 */
static int file_register(struct umm *u, unsigned long addr,
			 unsigned long len, bool wp)
{
	int r = fault_register(u, addr, len, wp);

	/* Tracked: every page starts write-protected, so that its first
	   write is seen. */
	if (r == 0 && wp)
		r = fault_protect(u, addr, len, true);
	if (r < 0 && wp) {
		/* Then none of u's mappings is trusted to be tracked:
		   their pages count as written, which is always safe. */
		log_warn("pid %d: write-protect: %s; writes tracked "
			 "conservatively", u->pid, strerror(-r));
		umm_untrack(u);
		fault_unregister(u, addr, len);
		r = fault_register(u, addr, len, false);
	}
	return r;
}

int file_commit(struct umm *u, const struct upage_map_commit *m)
{
	unsigned long len = PAGE_ALIGN(m->len), a = m->addr;
	struct vm_area_struct *vma;

	if (!m->len || len < m->len || !umm_range_ok(u, m->addr, len))
		return -EINVAL;
	bool wp = umm_tracks(u);

	/* Only file mappings the model holds, whole. A mapping that cannot
	   write now is not write-protected: the kernel then maps the pages
	   around a read fault at once (fault-around), which it never does
	   under write-protect. file_protect() tracks it if it turns
	   writable. Anonymous shared memory (a grown tail) needs nothing. */
	vma = find_vma(&u->mm, a);
	if (vma && vma->vm_start <= a && vma->vm_ops == &shm_vm_ops &&
	    vma->vm_end >= m->addr + len)
		return 0;
	while (a < m->addr + len) {
		vma = find_vma(&u->mm, a);
		if (!vma || vma->vm_start > a || !vma_is_file(vma))
			return -EINVAL;
		wp &= vma_writes_shared(vma);
		a = vma->vm_end;
	}
	return file_register(u, m->addr, len, wp);
}

int file_protect(struct umm *u, unsigned long addr, unsigned long len)
{
	unsigned long end = addr + len, s, e;
	struct vm_area_struct *vma;
	int r;

	if (!umm_tracks(u))
		return 0;
	for (vma = find_vma_intersection(&u->mm, addr, end);
	     vma && vma->vm_start < end; vma = vma_next(vma)) {
		if (!vma_writes_shared(vma))
			continue;
		s = vma->vm_start > addr ? vma->vm_start : addr;
		e = vma->vm_end < end ? vma->vm_end : end;
		r = file_register(u, s, e - s, true);
		if (r < 0)
			return r;
	}
	return 0;
}

static void file_sync_finish(struct file_sync *s)
{
	if (--s->pending)
		return;
	if (s->c)
		proto_reply(s->c->fd, &s->req, s->err, 0, 0, 0);
	if (s->prev)
		s->prev->next = s->next;
	else
		syncs = s->next;
	if (s->next)
		s->next->prev = s->prev;
	free(s);
}

static void file_sync_part_end(struct file_sync_part *p, ssize_t res)
{
	if (res < 0 && !p->s->err)
		p->s->err = -EIO; /* as msync(2) reports it */
	file_sync_finish(p->s);
	backing_put(p->b);
	free(p);
}

static void file_sync_fsync_done(void *arg, ssize_t res)
{
	file_sync_part_end(arg, res);
}

static void file_sync_wb_done(void *arg, ssize_t res)
{
	struct file_sync_part *p = arg;

	if (res >= 0 && p->s->fsync &&
	    io_fsync(&file_io, p->b->fd, file_sync_fsync_done, p) == 0)
		return;
	file_sync_part_end(p, res);
}

/*
 * Reads resident clean pages [first, first + n) of b from the file again,
 * in place: every mapper sees the new data at once, with no fault and no
 * TLB shootdown (evicting would cost both). The file data was just
 * written, so it is in the kernel's page cache: a copy, not disk I/O.
 * A page that cannot be read is evicted instead.
 */
static int file_refresh(struct backing *b, unsigned long first,
			unsigned long n)
{
	unsigned long end = first + n > b->npages ? b->npages : first + n;
	unsigned long i, run;
	ssize_t got;

	for (i = first; i < end; i += run ? run : 1) {
		run = backing_clean_run(b, i, end);
		if (!run)
			continue;
		got = pread(b->fd, b->view + i * PAGE_SIZE, run * PAGE_SIZE,
			    (off_t)(i * PAGE_SIZE));
		if (got < 0)
			got = 0;
		if ((unsigned long)got < run * PAGE_SIZE) {
			/* The end of the file: the rest of its page is
			   zeroes, as the kernel shows it. */
			unsigned long whole = PAGE_ALIGN((unsigned long)got);

			memset(b->view + i * PAGE_SIZE + got, 0,
			       whole - (unsigned long)got);
			if (whole < run * PAGE_SIZE) {
				int r = backing_evict(b, i + whole / PAGE_SIZE,
						      run - whole / PAGE_SIZE);

				if (r < 0)
					return r;
			}
		}
	}
	return 0;
}

/*
 * msync(MS_INVALIDATE) alone: the files mapped at [addr, addr + len)
 * changed behind the page cache (a write(2) the preload shim saw). Their
 * clean resident pages there are read again (file_refresh), so every
 * mapping of them, in every client, sees the file; the size is followed
 * too. Dirty pages and pages being read stay: write back first (MS_SYNC).
 */
static int file_invalidate(struct umm *u, unsigned long addr,
			   unsigned long len)
{
	unsigned long end = addr + len;
	struct vm_area_struct *vma;
	int r = 0;

	/*
	 * A page being written back (by eviction, say) holds what it held
	 * before the file changed, and is not refreshed while the write
	 * runs; nor is a page being read. Both end first: the loop waits
	 * for the I/O in flight, as msync(MS_SYNC) does.
	 */
	io_drain(&file_io);
	vma = find_vma_intersection(&u->mm, addr, end);
	for (; vma && vma->vm_start < end && !r; vma = vma_next(vma)) {
		unsigned long s0 = vma->vm_start > addr ? vma->vm_start : addr;
		unsigned long e0 = vma->vm_end < end ? vma->vm_end : end;
		unsigned long first, last;
		struct backing *b;

		if (!vma_is_file(vma))
			continue;
		b = backing_of(vma);
		file_check_size(b);
		first = vma_pgoff_at(vma, s0);
		last = vma_pgoff_at(vma, e0 - 1);
		if (first < b->npages) {
			backing_mark_stale(b, first, last - first + 1);
			r = file_refresh(b, first, last - first + 1);
		}
	}
	return r;
}

/*
 * msync of [addr, addr + len), checked by the caller: every shared file
 * VMA there writes back what any writable shared mapping of the same pages
 * may have written. Returns 1 when the reply waits for the I/O (MS_SYNC),
 * else 0 or -errno to reply with now.
 */
int file_sync(struct client *c, const struct upage_hdr *req,
	      unsigned long addr, unsigned long len, int flags)
{
	struct umm *u = c->umm;
	unsigned long end = addr + len;
	struct vm_area_struct *vma;
	struct file_sync *s;
	int r = 0;

	if ((flags & (MS_INVALIDATE | MS_SYNC | MS_ASYNC)) == MS_INVALIDATE)
		return file_invalidate(u, addr, len);
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->c = c;
	s->req = *req;
	s->pending = 1;
	s->fsync = flags & MS_SYNC;
	s->next = syncs;
	if (syncs)
		syncs->prev = s;
	syncs = s;
	vma = find_vma_intersection(&u->mm, addr, end);
	for (; vma && vma->vm_start < end; vma = vma_next(vma)) {
		unsigned long s0 = vma->vm_start > addr ? vma->vm_start : addr;
		unsigned long e0 = vma->vm_end < end ? vma->vm_end : end;
		unsigned long first, last;
		struct file_sync_part *p;
		struct backing *b;

		if (vma->vm_ops != &file_vm_ops)
			continue;
		b = backing_of(vma);
		if (!b->writable)
			continue; /* no writer: nothing can be dirty */
		first = vma_pgoff_at(vma, s0);
		last = vma_pgoff_at(vma, e0 - 1);
		/* Writers are protected before the dirty bits clear (a write
		   from now on faults and dirties the page again); what
		   untracked writers map counts as written. */
		reclaim_protect(b, first, last - first + 1, NULL);
		p = malloc(sizeof(*p));
		if (!p) {
			r = -ENOMEM;
			break;
		}
		p->s = s;
		p->b = b;
		backing_hold(b);
		s->pending++;
		r = backing_writeback(b, first, last - first + 1,
				      file_sync_wb_done, p);
		if (r < 0) {
			s->pending--;
			backing_put(b);
			free(p);
			break;
		}
	}
	if (r < 0)
		s->err = r;
	if (!s->fsync || r < 0) {
		/* MS_ASYNC: started is enough; the reply goes now. */
		s->c = NULL;
		file_sync_finish(s);
		return r;
	}
	/*
	 * MS_SYNC: also every write-back already in flight (an unmap's, a
	 * dead writer's) must be on the file before the reply, as msync(2)
	 * waits for pages under write-back. Waiting for all of the ring is
	 * the simple way; it holds the loop for the time of that I/O.
	 */
	io_drain(&file_io);
	file_sync_finish(s);
	return 1;
}

static int prot_of_flags(unsigned int vm_flags)
{
	return ((vm_flags & VM_READ) ? PROT_READ : 0) |
	       ((vm_flags & VM_WRITE) ? PROT_WRITE : 0) |
	       ((vm_flags & VM_EXEC) ? PROT_EXEC : 0);
}

/* RMAP_QUERY: answered here, fd (the file) is ours. */
void file_rmap_query(struct client *c, const struct upage_rmap_query *q,
		     int fd)
{
	uint64_t buf[UPAGE_MSG_MAX / 8];
	struct upage_rmap_reply *r = (void *)buf;
	struct vm_area_struct *vma;
	unsigned long first = q->first, last;
	struct backing *b = NULL;
	struct stat st;
	uint64_t seen = 0;

	/* Fork children that died (or exec'd) before we learnt their pid
	   would still be listed: reap them first. */
	fault_reap_unbound();
	memset(r, 0, sizeof(*r));
	r->hdr.version = UPAGE_PROTO_VERSION;
	r->hdr.type = q->hdr.type | UPAGE_MSG_REPLY;
	r->hdr.id = q->hdr.id;
	last = q->npages ? first + q->npages - 1 : ~0UL;
	if (q->npages && last < first)
		r->error = -EINVAL;
	else if (fstat(fd, &st) < 0)
		r->error = -errno;
	else if (!S_ISREG(st.st_mode))
		r->error = -ENODEV;
	else if (file_ready_ok)
		b = backing_find(&file_table, st.st_dev, st.st_ino);
	close(fd);
	if (b) {
		rmap_for_each(vma, &b->as, first, last) {
			struct umm *u = umm_of(vma);
			struct upage_rmap_entry *e;
			unsigned long f, l;

			if (c->uid != 0 && u->uid != c->uid)
				continue;
			if (seen++ < q->skip || r->count >= UPAGE_RMAP_MAX)
				continue;
			f = first > vma->vm_pgoff ? first : vma->vm_pgoff;
			l = vma->vm_pgoff + vma_pages(vma) - 1;
			if (l > last)
				l = last;
			e = &r->entry[r->count++];
			memset(e, 0, sizeof(*e));
			e->pid = u->pid;
			e->prot = prot_of_flags(vma->vm_flags);
			e->vm_flags = vma->vm_flags;
			e->start = vma_address(vma, f);
			e->end = vma_address(vma, l) + PAGE_SIZE;
			e->pgoff = f;
		}
	}
	r->total = seen;
	r->hdr.len = sizeof(*r) + r->count * sizeof(r->entry[0]);
	proto_send(c->fd, r, r->hdr.len);
}

const struct vm_operations_struct file_vm_ops = {
	.name = "file",
	.open = file_vma_open,
	.close = file_vma_close,
	.fault = file_fault,
};
