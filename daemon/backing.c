/*
 * backing.c - backing objects and their memfd page caches (contract in
 * backing.h).
 *
 * File data never lands in the memfd through the daemon's mapping of it: a
 * page reached through a mapping exists, zero-filled, before the data is
 * copied in, and a client touching it then would see zeroes instead of
 * faulting (a read straight into the view would be seen half done). So
 * data is written into the memfd with write(2) semantics, spliced from the
 * file's cached pages or from a bounce buffer: the page cache page stays
 * locked while it is filled, so a client fault on it waits and then sees
 * whole data.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/magic.h>
#include <linux/mount.h>
#include <linux/userfaultfd.h>

#include "backing.h"

#ifndef SYS_cachestat
#define SYS_cachestat 451 /* kernel 6.5; the headers here are older */
#endif

struct backing_cachestat_range {
	uint64_t off;
	uint64_t len;
};

struct backing_cachestat {
	uint64_t nr_cache;
	uint64_t nr_dirty;
	uint64_t nr_writeback;
	uint64_t nr_evicted;
	uint64_t nr_recently_evicted;
};

/* Address space held for the view beyond the file's size, for growth. */
#define VIEW_SLACK (1UL << 30)

static unsigned long bitmap_words(unsigned long pages)
{
	return (pages + 63) / 64;
}

static void page_set(uint64_t *map, unsigned long i)
{
	map[i / 64] |= 1ULL << (i % 64);
}

static void page_clear(uint64_t *map, unsigned long i)
{
	map[i / 64] &= ~(1ULL << (i % 64));
}

/* Page i entered (in) or left the cache: every count follows. */
static void backing_account(struct backing *b, unsigned long i, bool in)
{
	if (in) {
		page_set(b->resident, i);
		b->nr_resident++;
		b->table->resident_pages++;
	} else {
		page_clear(b->resident, i);
		b->nr_resident--;
		b->table->resident_pages--;
	}
	if (b->table->resident_changed)
		b->table->resident_changed(b, i, 1, in);
}

static unsigned long backing_hash(const struct backing_table *t,
				  unsigned long dev, unsigned long ino)
{
	unsigned long h = ino * 0x9e3779b97f4a7c15UL ^ dev;

	return (h ^ (h >> 29)) % t->nbuckets;
}

int backing_table_init(struct backing_table *t, struct io_ctx *io,
		       backing_ready_fn ready)
{
	memset(t, 0, sizeof(*t));
	t->nbuckets = 1024;
	t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
	if (!t->buckets)
		return -ENOMEM;
	t->io = io;
	t->ready = ready;
	t->huge_mnt = -1;
	t->win_uffd = -1;
	t->watch_fd = -1;
	return 0;
}

int backing_table_watch(struct backing_table *t)
{
	t->watch_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	return t->watch_fd >= 0 ? t->watch_fd : -errno;
}

void backing_watch_read(struct backing_table *t,
			void (*changed)(struct backing *b))
{
	char buf[4096]
		__attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;

	while ((n = read(t->watch_fd, buf, sizeof(buf))) > 0) {
		int wd[16];
		size_t nwd = 0, k;
		bool all = false;

		/* The files named (a few, mostly one), then one pass. */
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *e = (const void *)p;

			for (k = 0; k < nwd && wd[k] != e->wd; k++)
				;
			if (e->mask & IN_Q_OVERFLOW)
				all = true;
			else if (k == nwd && !(e->mask & IN_IGNORED)) {
				if (nwd == sizeof(wd) / sizeof(wd[0]))
					all = true; /* too many: all of them */
				else
					wd[nwd++] = e->wd;
			}
			p += sizeof(*e) + e->len;
		}
		for (unsigned long i = 0; i < t->nbuckets && (all || nwd); i++)
			for (struct backing *b = t->buckets[i]; b;
			     b = b->hash_next) {
				for (k = 0; k < nwd && wd[k] != b->watch; k++)
					;
				if (b->watch >= 0 && (all || k < nwd))
					changed(b);
			}
	}
}

/*
 * The daemon's own userfaultfd, for the objects' placement windows
 * (backing.h): missing pages there never wait, they are never touched;
 * it only gives UFFDIO_COPY somewhere to put a page. -1 if refused.
 */
static int backing_win_uffd(void)
{
	struct uffdio_api api = {
		.api = UFFD_API,
		.features = UFFD_FEATURE_SIGBUS | UFFD_FEATURE_MISSING_SHMEM,
	};
	int fd = (int)syscall(SYS_userfaultfd,
			      O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);

	if (fd >= 0 && ioctl(fd, UFFDIO_API, &api) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* A tmpfs of our own with huge pages, mounted in no namespace: *mnt. */
static int backing_mount_huge(int *mnt)
{
	static const char *const opts[][2] = {
		{ "huge", "within_size" }, /* no page past the end */
		{ "size", "0" },           /* no limit but memory's */
		{ "nr_inodes", "0" },
	};
	int fs, err = 0;

	fs = (int)syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC);
	if (fs < 0)
		return -errno;
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]) && !err; i++)
		if (syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, opts[i][0],
			    opts[i][1], 0) < 0)
			err = -errno;
	if (!err && syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL,
			    0) < 0)
		err = -errno;
	if (!err) {
		*mnt = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, 0);
		if (*mnt < 0)
			err = -errno;
	}
	close(fs);
	return err;
}

int backing_table_huge(struct backing_table *t, const char *dir)
{
	int mnt = -1, err;
	struct statfs sf;

	if (dir) {
		mnt = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (mnt < 0)
			return -errno;
		/* Anywhere else, O_TMPFILE would page to a disk. */
		if (fstatfs(mnt, &sf) < 0 || sf.f_type != TMPFS_MAGIC) {
			close(mnt);
			return -ENOTTY;
		}
	} else {
		err = backing_mount_huge(&mnt);
		if (err)
			return err;
	}
	t->huge_mnt = mnt;
	t->win_uffd = backing_win_uffd();
	return 0;
}

static int backing_reread(struct backing *b, unsigned long i);

unsigned long backing_extent_end(const struct backing *b, unsigned long lo)
{
	return lo + HUGE_PAGES < b->npages ? lo + HUGE_PAGES : b->npages;
}

/*
 * Our own fd for O_DIRECT, reopened from b->fd (O_DIRECT must not change
 * the client's file description), writable if b->fd is; -1 where not
 * supported. A huge page cache, or a table told to, reads what the kernel
 * has not cached this way (one copy into our cache, none in the kernel's).
 * Every cache writes whole pages back this way: no copy into the kernel's
 * cache (a second copy of what we hold, outside any budget), no queue
 * behind io_uring's one worker per file for buffered writes, and nothing
 * of ours left dirty in the kernel's cache.
 */
static void backing_open_direct(struct backing *b)
{
	bool reads = b->table->direct || b->huge;
	char link[64];

	if (!reads && !b->writable)
		return;
	if (b->dfd >= 0)
		close(b->dfd);
	snprintf(link, sizeof(link), "/proc/self/fd/%d", b->fd);
	b->dfd = open(link, (b->writable ? O_RDWR : O_RDONLY) | O_DIRECT |
				    O_CLOEXEC);
	b->dfd_reads = b->dfd >= 0 && reads;
	b->dfd_writes = b->dfd >= 0 && b->writable;
}

/*
 * Releases what an object holds, whether it was made whole or given up
 * half-made (descriptors still -1, view still MAP_FAILED).
 */
static void backing_destroy(struct backing *b)
{
	if (b->watch >= 0)
		inotify_rm_watch(b->table->watch_fd, b->watch);
	if (b->view != MAP_FAILED)
		munmap(b->view, b->view_reserved);
	if (b->win != MAP_FAILED)
		munmap(b->win, b->view_reserved);
	if (b->dfd >= 0)
		close(b->dfd);
	if (b->memfd_ro >= 0)
		close(b->memfd_ro);
	if (b->memfd >= 0)
		close(b->memfd);
	if (b->fd >= 0)
		close(b->fd);
	free(b->resident);
	free(b->reading);
	free(b->dirty);
	free(b->writing);
	free(b->stale);
	free(b);
}

static void backing_free(struct backing *b)
{
	struct backing_table *t = b->table;
	struct backing **pp = &t->buckets[backing_hash(t, b->as.dev, b->as.ino)];

	while (*pp != b)
		pp = &(*pp)->hash_next;
	*pp = b->hash_next;
	t->count--;
	t->resident_pages -= b->nr_resident;
	if (t->object_gone)
		t->object_gone(b);
	backing_destroy(b);
}

void backing_table_exit(struct backing_table *t)
{
	for (unsigned long i = 0; i < t->nbuckets; i++)
		while (t->buckets[i])
			backing_free(t->buckets[i]);
	free(t->buckets);
	t->buckets = NULL;
	while (t->bounces) {
		void *next = *(void **)t->bounces;

		free(t->bounces);
		t->bounces = next;
	}
	t->nbounces = 0;
	if (t->huge_mnt >= 0)
		close(t->huge_mnt);
	t->huge_mnt = -1;
	if (t->win_uffd >= 0)
		close(t->win_uffd);
	t->win_uffd = -1;
	if (t->watch_fd >= 0)
		close(t->watch_fd);
	t->watch_fd = -1;
}

void backing_hold(struct backing *b)
{
	b->refs++;
}

void backing_put(struct backing *b)
{
	if (--b->refs == 0)
		backing_free(b);
}

/* Maps memfd pages [from, to) at base, over its reservation. */
static int view_map_at(struct backing *b, unsigned char *base,
		       unsigned long from, unsigned long to)
{
	void *p = mmap(base + from * PAGE_SIZE, (to - from) * PAGE_SIZE,
		       PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		       b->memfd, (off_t)(from * PAGE_SIZE));

	return p == MAP_FAILED ? -errno : 0;
}

/*
 * Maps memfd pages [from, to) into the view, and into the placement window
 * if there is one (registered there). A window that cannot follow is given
 * up: its object then reads whole gaps.
 */
static int view_map(struct backing *b, unsigned long from, unsigned long to)
{
	struct uffdio_register r = {
		.range = { .start = (unsigned long)b->win + from * PAGE_SIZE,
			   .len = (to - from) * PAGE_SIZE },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	int err;

	if (to <= from)
		return 0;
	err = view_map_at(b, b->view, from, to);
	if (err || b->win == MAP_FAILED)
		return err;
	if (view_map_at(b, b->win, from, to) < 0 ||
	    ioctl(b->table->win_uffd, UFFDIO_REGISTER, &r) < 0) {
		munmap(b->win, b->view_reserved);
		b->win = MAP_FAILED;
	}
	return 0;
}

/* Gives view (and window) pages [from, to) back to the reservation. */
static void view_unmap(struct backing *b, unsigned long from, unsigned long to)
{
	unsigned char *base[2] = { b->view, b->win };

	for (int i = 0; i < 2 && to > from && base[i] != MAP_FAILED; i++)
		mmap(base[i] + from * PAGE_SIZE, (to - from) * PAGE_SIZE,
		     PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
		     MAP_FIXED, -1, 0);
}

/*
 * Puts data in as page pgoff of a huge object through its placement
 * window: one small page, no zeroes around it. 0 or -errno.
 */
static int backing_place_window(struct backing *b, unsigned long pgoff,
				const void *data)
{
	struct uffdio_copy c = {
		.dst = (unsigned long)b->win + pgoff * PAGE_SIZE,
		.src = (unsigned long)data, .len = PAGE_SIZE,
		.mode = UFFDIO_COPY_MODE_DONTWAKE,
	};

	if (b->win == MAP_FAILED)
		return -ENOENT;
	return ioctl(b->table->win_uffd, UFFDIO_COPY, &c) < 0 ? -errno : 0;
}

static int backing_create(struct backing_table *t, int fd,
			  const struct stat *st, bool writable,
			  struct backing **out)
{
	struct backing *b = calloc(1, sizeof(*b));
	unsigned long reserve_pages, words, h;
	char link[64];
	ssize_t n;
	int err;

	if (!b)
		return -ENOMEM;
	b->fd = b->memfd = b->memfd_ro = b->dfd = b->watch = -1;
	b->table = t;
	b->writable = writable;
	b->size = (uint64_t)st->st_size;
	b->npages = PAGE_ALIGN(b->size) >> PAGE_SHIFT;
	b->view_reserved = PAGE_ALIGN(b->size) + VIEW_SLACK;
	reserve_pages = b->view_reserved >> PAGE_SHIFT;
	words = bitmap_words(reserve_pages);
	b->resident = calloc(words, sizeof(uint64_t));
	b->reading = calloc(words, sizeof(uint64_t));
	b->dirty = calloc(words, sizeof(uint64_t));
	b->writing = calloc(reserve_pages ? reserve_pages : 1, 1);
	b->stale = calloc(words, sizeof(uint64_t));
	b->view = b->win = MAP_FAILED;
	err = -ENOMEM;
	if (!b->resident || !b->reading || !b->dirty || !b->writing ||
	    !b->stale)
		goto fail;
	b->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (t->huge_mnt >= 0) {
		b->memfd = openat(t->huge_mnt, ".",
				  O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		b->huge = b->memfd >= 0;
	}
	if (b->memfd < 0)
		b->memfd = memfd_create("upaged-cache", MFD_CLOEXEC);
	if (b->fd < 0 || b->memfd < 0)
		goto fail_errno;
	if (ftruncate(b->memfd, (off_t)(b->npages * PAGE_SIZE)))
		goto fail_errno;
	backing_open_direct(b);
	/* A new open file description: mappings of it can never write. */
	snprintf(link, sizeof(link), "/proc/self/fd/%d", b->memfd);
	b->memfd_ro = open(link, O_RDONLY | O_CLOEXEC);
	if (b->memfd_ro < 0)
		goto fail_errno;
	b->view = mmap(NULL, b->view_reserved, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (b->view == MAP_FAILED)
		goto fail_errno;
	/* A huge object's placement window, where the daemon can: a
	   second view, for UFFDIO_COPY only. */
	if (b->huge && t->win_uffd >= 0) {
		b->win = mmap(NULL, b->view_reserved, PROT_NONE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
			      0);
	}
	err = view_map(b, 0, b->npages);
	if (err)
		goto fail;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", b->fd);
	n = readlink(link, b->path, sizeof(b->path) - 1);
	b->path[n > 0 ? n : 0] = '\0';
	/* Without a watch (none left), a new size is seen at a fault. */
	if (t->watch_fd >= 0)
		b->watch = inotify_add_watch(t->watch_fd, link, IN_MODIFY);
	address_space_init(&b->as, st->st_dev, st->st_ino);
	b->refs = 1;
	h = backing_hash(t, b->as.dev, b->as.ino);
	b->hash_next = t->buckets[h];
	t->buckets[h] = b;
	t->count++;
	*out = b;
	return 0;

fail_errno:
	err = -errno;
fail:
	backing_destroy(b);
	return err;
}

int backing_get(struct backing_table *t, int fd, struct backing **out)
{
	struct backing *b;
	struct stat st;
	bool writable;
	int fl;

	if (fstat(fd, &st))
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -ENODEV;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -errno;
	writable = (fl & O_ACCMODE) == O_RDWR;
	for (b = t->buckets[backing_hash(t, st.st_dev, st.st_ino)]; b;
	     b = b->hash_next) {
		if (b->as.dev != (unsigned long)st.st_dev ||
		    b->as.ino != (unsigned long)st.st_ino)
			continue;
		if (writable && !b->writable) {
			/* Keep the fd that lets dirty pages reach the file. */
			int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);

			if (nfd < 0)
				return -errno;
			close(b->fd);
			b->fd = nfd;
			b->writable = true;
			backing_open_direct(b);
		}
		b->refs++;
		*out = b;
		return 0;
	}
	return backing_create(t, fd, &st, writable, out);
}

/* Zeroes [size, npages pages) of the memfd, the tail of its last page. */
static int backing_zero_tail(struct backing *b, uint64_t size,
			     unsigned long npages)
{
	static const char zeros[PAGE_SIZE];
	size_t n = npages * PAGE_SIZE - size;
	ssize_t w = pwrite(b->memfd, zeros, n, (off_t)size);

	return w == (ssize_t)n ? 0 : w < 0 ? -errno : -EIO;
}

int backing_refresh_size(struct backing *b)
{
	unsigned long npages, i;
	struct stat st;
	int err;

	if (fstat(b->fd, &st))
		return -errno;
	npages = PAGE_ALIGN((uint64_t)st.st_size) >> PAGE_SHIFT;
	if (npages * PAGE_SIZE > b->view_reserved)
		return -EFBIG;
	if (npages < b->npages) {
		/* Truncated: pages past the end leave every mapper. */
		for (i = npages; i < b->npages; i++) {
			if (page_test(b->resident, i))
				backing_account(b, i, false);
			if (page_test(b->dirty, i)) {
				page_clear(b->dirty, i);
				b->nr_dirty--;
			}
		}
		view_unmap(b, npages, b->npages);
	}
	if (ftruncate(b->memfd, (off_t)(npages * PAGE_SIZE)))
		return -errno;
	if (npages > b->npages) {
		err = view_map(b, b->npages, npages);
		if (err)
			return err;
	}
	/* The old last page may now have file data past its old tail: read
	   again, or in a huge page (never dropped alone) read over. */
	if (npages != b->npages && b->npages &&
	    (b->size & (PAGE_SIZE - 1)) && npages >= b->npages &&
	    page_test(b->resident, b->npages - 1) &&
	    !page_test(b->dirty, b->npages - 1)) {
		if (b->huge)
			backing_reread(b, b->npages - 1);
		else
			backing_evict(b, b->npages - 1, 1);
	}
	/* Shrunk into a page: its bytes past the new end read as zeroes in
	   every mapper, as the kernel clears them. */
	err = 0;
	if ((uint64_t)st.st_size < b->size && (st.st_size & (PAGE_SIZE - 1)) &&
	    page_test(b->resident, npages - 1))
		err = backing_zero_tail(b, (uint64_t)st.st_size, npages);
	b->size = (uint64_t)st.st_size;
	b->npages = npages;
	return err;
}

/*
 * One read of a run of pages into the memfd, by a copy thread: spliced from
 * the file when the kernel's page cache holds the run, else read through
 * io_uring into a bounce buffer first.
 */
struct backing_read_io {
	struct backing *b;
	unsigned long first;
	unsigned long npages;
	size_t bytes;         /* file bytes in the run */
	void *bounce;         /* NULL while spliced */
	int src;              /* our own duplicate of the file while spliced */
	bool urgent;          /* the faulting page's run: copied first */
	bool cached;          /* the kernel's page cache holds the run */
	bool place;           /* one page, for the table's place callback */
	bool hold;            /* a marker: not copied in when read */
	bool read;            /* the read ended, the data is in bounce */
	struct backing_read_io *held_next; /* the object's next marker */
};

static void backing_unhold(struct backing_read_io *rio);

/*
 * Read buffers of the largest run's size (a huge page's) are kept for the
 * next reads: a new one costs page faults and cleared pages. They are
 * asked for in huge pages: one fault each.
 */
#define BOUNCE_BYTES (HUGE_PAGES * PAGE_SIZE)
#define BOUNCES_KEPT 16

static void *backing_bounce_get(struct backing_table *t, size_t len)
{
	void *p = len <= BOUNCE_BYTES ? t->bounces : NULL;

	if (p) {
		t->bounces = *(void **)p;
		t->nbounces--;
		return p;
	}
	if (len < BOUNCE_BYTES)
		len = BOUNCE_BYTES;
	if (posix_memalign(&p, BOUNCE_BYTES, len))
		return NULL;
	madvise(p, len, MADV_HUGEPAGE);
	return p;
}

static void backing_bounce_put(struct backing_table *t, void *p, size_t len)
{
	if (p && len <= BOUNCE_BYTES && t->nbounces < BOUNCES_KEPT) {
		*(void **)p = t->bounces;
		t->bounces = p;
		t->nbounces++;
	} else {
		free(p);
	}
}

/* Reads page i of the file again into the memfd, at once (it was just
   written, so it is in the kernel's page cache). */
static int backing_reread(struct backing *b, unsigned long i)
{
	ssize_t got;

	do
		got = pread(b->fd, b->view + i * PAGE_SIZE, PAGE_SIZE,
			    (off_t)(i * PAGE_SIZE));
	while (got < 0 && errno == EINTR);
	if (got < 0)
		return -errno;
	memset(b->view + i * PAGE_SIZE + got, 0, PAGE_SIZE - (size_t)got);
	return 0;
}

void backing_mark_stale(struct backing *b, unsigned long first,
			unsigned long npages)
{
	for (unsigned long i = first; i < first + npages && i < b->npages; i++)
		if (page_test(b->reading, i))
			page_set(b->stale, i);
}

static void backing_read_finish(struct backing_read_io *rio, int err)
{
	struct backing *b = rio->b;
	unsigned long i;

	/* The bitmaps cover the view's reservation: pages past a new end
	   of the file are still ours to clear. */
	for (i = rio->first; i < rio->first + rio->npages; i++) {
		if (!page_test(b->reading, i))
			continue;
		if (page_test(b->stale, i)) {
			/* The file changed while this read ran: what it
			   brought may be older than the file. */
			page_clear(b->stale, i);
			if (!err && i < b->npages)
				err = backing_reread(b, i);
		}
		page_clear(b->reading, i);
		b->table->reading_pages--;
		if (!err && i < b->npages && !page_test(b->resident, i))
			backing_account(b, i, true);
	}
	if (rio->hold)
		backing_unhold(rio); /* a failed marker */
	if (err && err != -ECANCELED)
		b->stats.io_errors++;
	else if (!err)
		b->stats.read_pages += rio->npages;
	if (b->table->ready)
		b->table->ready(b, rio->first, rio->npages, err);
	backing_bounce_put(b->table, rio->bounce, rio->npages * PAGE_SIZE);
	free(rio);
	backing_put(b);
}

/* Does the kernel's page cache hold all of [off, off + len) of the file? */
static bool backing_cached(struct backing *b, uint64_t off, size_t len)
{
	struct backing_cachestat_range r = { .off = off, .len = len };
	struct backing_cachestat cs;

	if (syscall(SYS_cachestat, b->fd, &r, &cs, 0) < 0)
		return false;
	return cs.nr_cache * PAGE_SIZE >= PAGE_ALIGN(len);
}

/*
 * The test hook for the read-error path ($UPAGED_FAIL_READS_OF): no disk
 * here fails on demand, so reads of that one file are made to.
 */
static bool backing_fails_reads(const struct backing *b)
{
	return b->table->fail_reads_of && *b->table->fail_reads_of &&
	       !strcmp(b->path, b->table->fail_reads_of);
}

static int backing_read_bounce(struct backing_read_io *rio);

/* Runs up to this many bytes are copied into the memfd by the loop. */
#define BACKING_INLINE_COPY (2 * PAGE_SIZE)

/* The copy into the memfd ended: the run is in, or failed. */
static void backing_copy_done(void *arg, ssize_t res)
{
	struct backing_read_io *rio = arg;
	struct backing *b = rio->b;

	/* The file shrank while the copy ran, which grew the memfd again:
	   pages past the end must raise SIGBUS. */
	if (rio->first + rio->npages > b->npages &&
	    ftruncate(b->memfd, (off_t)(b->npages * PAGE_SIZE)) < 0)
		res = -errno;
	if (!rio->bounce) {
		close(rio->src);
		rio->src = -1;
		/* A file that cannot splice is read instead. A short splice
		   is the file shrinking: pages left out of the memfd are
		   read again when touched (file_fault checks). */
		if (res < 0 && backing_read_bounce(rio) == 0)
			return;
	}
	backing_read_finish(rio, res < 0 ? (int)res : 0);
}

static void backing_fill(struct backing_read_io *rio);
static void backing_release_marker(struct backing_read_io *rio, bool urgent);

static void backing_read_done(void *arg, ssize_t res)
{
	struct backing_read_io *rio = arg;
	struct backing *b = rio->b;

	if (res >= 0 && backing_fails_reads(b))
		res = -EIO;
	if (res < 0) {
		backing_read_finish(rio, (int)res);
		return;
	}
	/*
	 * Fewer bytes than planned: the file shrank under us. Fill what was
	 * read; the tail of the run reads as zeroes, as past EOF in a page.
	 */
	memset((char *)rio->bounce + res, 0,
	       rio->npages * PAGE_SIZE - (size_t)res);
	rio->read = true;
	if (!rio->hold)
		backing_fill(rio);
}

/* The run is read: into the cache with it. */
static void backing_fill(struct backing_read_io *rio)
{
	struct backing *b = rio->b;
	size_t len = rio->npages * PAGE_SIZE;
	int err;

	/* Never past the end the file has now: a write there would grow the
	   memfd again after a truncation, and pages there must SIGBUS. */
	if (rio->first >= b->npages)
		len = 0;
	else if (rio->first + rio->npages > b->npages)
		len = (b->npages - rio->first) * PAGE_SIZE;
	/* Nor the bytes past it in the last page, read before it shrank. */
	if (len && rio->first * PAGE_SIZE + len > b->size)
		memset((char *)rio->bounce + (b->size - rio->first * PAGE_SIZE),
		       0, rio->first * PAGE_SIZE + len - b->size);
	if (rio->place && len == PAGE_SIZE) {
		err = b->table->place(b, rio->first, rio->bounce);
		if (err && err != -EEXIST && b->huge)
			err = backing_place_window(b, rio->first, rio->bounce);
		if (err == -EEXIST && backing_in_memfd(b, rio->first))
			err = 0; /* filled meanwhile: nothing to write */
		if (!err) {
			backing_copy_done(rio, (ssize_t)len);
			return;
		}
		/* In a huge object a lone write would make a large folio
		   of zeroes: left unread, its waiters fault again, and this
		   object's pages are read whole extents from now on. */
		if (b->huge) {
			b->no_place = true;
			backing_read_finish(rio, -ECANCELED);
			return;
		}
	}
	/* A page or two (a random fault): copied here, at once, which
	   costs less than handing it to the copy thread and back. */
	if (len && len <= BACKING_INLINE_COPY) {
		ssize_t n = 0, w;

		while ((size_t)n < len) {
			w = pwrite(b->memfd, (char *)rio->bounce + n,
				   len - (size_t)n,
				   (off_t)(rio->first * PAGE_SIZE) + n);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				n = w < 0 ? -errno : -EIO;
				break;
			}
			n += w;
		}
		backing_copy_done(rio, n);
		return;
	}
	/* Into the memfd with write(2) semantics, on a copy thread: the
	   loop goes on serving faults meanwhile. */
	err = len ? io_copy(b->table->io, -1, rio->bounce, b->memfd, len,
			    (off_t)(rio->first * PAGE_SIZE),
			    (rio->urgent ? IO_COPY_URGENT : 0) |
				    (b->huge ? IO_COPY_WHOLE : 0),
			    backing_copy_done, rio)
		  : 0;
	if (!len || err)
		backing_read_finish(rio, err);
}

/* Reads rio's run from the file into a bounce buffer; 0 or -errno. */
static int backing_read_bounce(struct backing_read_io *rio)
{
	struct backing *b = rio->b;
	uint64_t off = (uint64_t)rio->first * PAGE_SIZE;
	size_t len = rio->npages * PAGE_SIZE;
	int err;

	rio->bounce = backing_bounce_get(b->table, len);
	if (!rio->bounce)
		return -ENOMEM;
	/* O_DIRECT reads whole pages: not for the file's partial last one,
	   whose short read would continue at an unaligned offset. */
	if (b->dfd_reads && !rio->cached && off + len <= b->size)
		err = io_read(b->table->io, b->dfd, rio->bounce, len,
			      (off_t)off, backing_read_done, rio);
	else
		err = io_read(b->table->io, b->fd, rio->bounce, rio->bytes,
			      (off_t)off, backing_read_done, rio);
	if (err) {
		backing_bounce_put(b->table, rio->bounce, len);
		rio->bounce = NULL;
	}
	return err;
}

/*
 * Issues the read of [first, first + npages): all missing and not reading.
 * urgent: a client waits for the run, so its copy goes before readahead.
 */
static int backing_read_run(struct backing *b, unsigned long first,
			    unsigned long npages, bool urgent, bool place,
			    bool hold)
{
	struct backing_read_io *rio = calloc(1, sizeof(*rio));
	uint64_t off = (uint64_t)first * PAGE_SIZE;
	unsigned long i;
	int err;

	if (!rio)
		return -ENOMEM;
	rio->b = b;
	rio->first = first;
	rio->npages = npages;
	rio->urgent = urgent;
	rio->place = place;
	rio->hold = hold;
	rio->src = -1;
	rio->bytes = npages * PAGE_SIZE;
	if (off + rio->bytes > b->size)
		rio->bytes = (size_t)(b->size - off);
	/* Spliced in pieces, a run would show a huge page's zeroes between
	   them: one write of it all. */
	rio->cached = !backing_fails_reads(b) &&
		      backing_cached(b, off, rio->bytes);
	if (rio->cached && !b->huge && !place && !hold) {
		/* Our own descriptor: the object's may be swapped for a
		   writable one while the copy runs. */
		rio->src = fcntl(b->fd, F_DUPFD_CLOEXEC, 0);
		if (rio->src >= 0 &&
		    io_copy(b->table->io, rio->src, NULL, b->memfd, rio->bytes,
			    (off_t)off, urgent ? IO_COPY_URGENT : 0,
			    backing_copy_done, rio) == 0)
			goto issued;
		if (rio->src >= 0)
			close(rio->src);
		rio->src = -1;
	}
	err = backing_read_bounce(rio);
	if (err) {
		free(rio);
		return err;
	}
issued:
	for (i = first; i < first + npages; i++)
		page_set(b->reading, i);
	b->table->reading_pages += npages;
	if (hold) {
		/* In file order: the reader meets them in turn. */
		struct backing_read_io **pp = &b->held;

		while (*pp && (*pp)->first < first)
			pp = &(*pp)->held_next;
		rio->held_next = *pp;
		*pp = rio;
		b->table->held_pages += npages;
	}
	backing_hold(b);
	b->stats.read_ios++;
	return 0;
}

/*
 * Issues the read of [first, first + npages), all missing and not reading;
 * in a huge page cache, of the whole gap around each part instead: every missing
 * page between its extent's resident ones (backing.h). -EAGAIN: a read of
 * another part of that gap is in flight (a file that grew made it
 * huge), so the gap waits until it ends. 0 or -errno.
 */
static int backing_issue(struct backing *b, unsigned long first,
			 unsigned long npages, bool urgent)
{
	unsigned long end = first + npages, lo, hi, s, e;
	int err;

	while (first < end && b->huge) {
		lo = first & ~(HUGE_PAGES - 1);
		hi = backing_extent_end(b, lo);
		for (s = first; s > lo && !page_test(b->resident, s - 1); s--)
			;
		for (e = first + 1; e < hi && !page_test(b->resident, e); e++)
			;
		for (unsigned long i = s; i < e; i++)
			if (page_test(b->reading, i))
				return -EAGAIN;
		err = backing_read_run(b, s, e - s, urgent, false, false);
		if (err)
			return err;
		first = e;
	}
	return first < end ? backing_read_run(b, first, end - first, urgent,
					      false, false)
			   : 0;
}

/*
 * Window for a fault at pgoff: grows (doubling) while faults land in or
 * just after the previous window, falls back to the minimum otherwise.
 */
static unsigned long backing_ra_window(struct backing *b, unsigned long pgoff)
{
	bool sequential = b->ra_size && pgoff >= b->ra_start &&
			  pgoff <= b->ra_start + b->ra_size;

	if (sequential) {
		b->ra_size *= 2;
		if (b->ra_size > RA_MAX_PAGES)
			b->ra_size = RA_MAX_PAGES;
	} else {
		b->ra_size = RA_MIN_PAGES;
	}
	if (b->table->ra_cap && b->ra_size > b->table->ra_cap)
		b->ra_size = b->table->ra_cap;
	b->ra_start = pgoff;
	return b->ra_size;
}

/* What backing_read() returns for page pgoff; 2: it must be read. */
static int backing_page_state(const struct backing *b, unsigned long pgoff)
{
	if (pgoff >= b->npages)
		return -EFAULT;
	if (page_test(b->resident, pgoff))
		return 1;
	return page_test(b->reading, pgoff) ? 0 : 2;
}

int backing_read(struct backing *b, unsigned long pgoff)
{
	unsigned long end, i, run;
	int err = backing_page_state(b, pgoff);

	if (err != 2)
		return err;
	end = pgoff + backing_ra_window(b, pgoff);
	if (end > b->npages)
		end = b->npages;
	/* The faulting page first; the rest of the window only if it works. */
	for (i = pgoff; i < end; i += run ? run : 1) {
		run = 0;
		while (i + run < end && !page_test(b->resident, i + run) &&
		       !page_test(b->reading, i + run))
			run++;
		if (!run)
			continue;
		err = backing_issue(b, i, run, i == pgoff);
		if (err)
			return i == pgoff ? err : 0;
		if (i != pgoff)
			b->stats.ra_pages += run;
		else
			b->stats.ra_pages += run - 1;
	}
	return 0;
}

struct backing *backing_find(struct backing_table *t, unsigned long dev,
			     unsigned long ino)
{
	struct backing *b = t->buckets[backing_hash(t, dev, ino)];

	while (b && (b->as.dev != dev || b->as.ino != ino))
		b = b->hash_next;
	return b;
}

void backing_forget(struct backing *b, unsigned long pgoff)
{
	if (pgoff < b->npages && page_test(b->resident, pgoff))
		backing_account(b, pgoff, false);
	if (pgoff < b->npages && page_test(b->dirty, pgoff)) {
		page_clear(b->dirty, pgoff); /* its data is gone with it */
		b->nr_dirty--;
	}
}

int backing_read_place(struct backing *b, unsigned long pgoff)
{
	int st = backing_page_state(b, pgoff);

	if (st != 2 || !b->table->place || b->no_place)
		return st == 2 ? backing_issue(b, pgoff, 1, true) : st;
	return backing_read_run(b, pgoff, 1, true, true, false);
}

bool backing_in_memfd(const struct backing *b, unsigned long pgoff)
{
	unsigned char vec = 0;

	if (mincore(b->view + pgoff * PAGE_SIZE, PAGE_SIZE, &vec) < 0)
		return true;
	return vec & 1;
}

int backing_readahead(struct backing *b, unsigned long first,
		      unsigned long npages)
{
	unsigned long end, i, run;
	int err;

	/* Under a budget: no read may push out what it is read for. */
	if (b->table->ra_cap && npages > b->table->ra_cap)
		npages = b->table->ra_cap;
	end = first + npages;
	if (end > b->npages || end < first)
		end = b->npages;
	for (i = first; i < end; i += run ? run : 1) {
		/* In pieces: the first pages are ready while the rest read. */
		run = 0;
		while (i + run < end && run < RA_CHUNK_PAGES &&
		       !page_test(b->resident, i + run) &&
		       !page_test(b->reading, i + run))
			run++;
		if (!run)
			continue;
		err = backing_issue(b, i, run, false);
		if (err == -EAGAIN)
			continue;
		if (err)
			return err;
		b->stats.ra_pages += run;
	}
	return 0;
}

int backing_hold_marker(struct backing *b, unsigned long pgoff)
{
	unsigned long lo = pgoff & ~(HUGE_PAGES - 1), end;
	int err;

	if (!b->huge || lo >= b->npages)
		return -EINVAL;
	end = backing_extent_end(b, lo);
	for (unsigned long i = lo; i < end; i++)
		if (backing_page_state(b, i) != 2)
			return -EEXIST; /* not one read: no marker */
	/* The extent is one gap: one run, with no gap to look for. */
	err = backing_read_run(b, lo, end - lo, false, false, true);
	if (!err)
		b->stats.ra_pages += end - lo;
	return err;
}

bool backing_marker_hit(struct backing *b, unsigned long pgoff)
{
	struct backing_read_io *rio = b->held;

	while (rio && rio->first + rio->npages <= pgoff)
		rio = rio->held_next;
	if (!rio || pgoff < rio->first)
		return false;
	/* Those before it were gone past: in with them too. */
	backing_release_markers(b, rio->first, false);
	backing_release_marker(rio, true);
	return true;
}

static void backing_unhold(struct backing_read_io *rio)
{
	struct backing *b = rio->b;
	struct backing_read_io **pp = &b->held;

	while (*pp != rio)
		pp = &(*pp)->held_next;
	*pp = rio->held_next;
	rio->held_next = NULL;
	rio->hold = false;
	b->table->held_pages -= rio->npages;
}

static void backing_release_marker(struct backing_read_io *rio, bool urgent)
{
	backing_unhold(rio);
	rio->urgent = urgent;
	if (rio->read)
		backing_fill(rio); /* else when its read ends */
}

void backing_release_markers(struct backing *b, unsigned long end,
			     bool urgent)
{
	while (b->held && b->held->first < end)
		backing_release_marker(b->held, urgent);
}

void backing_mark_dirty(struct backing *b, unsigned long first,
			unsigned long npages)
{
	for (unsigned long i = first; i < first + npages && i < b->npages; i++) {
		if (!page_test(b->dirty, i)) {
			page_set(b->dirty, i);
			b->nr_dirty++;
		}
	}
}

/* One write-back request, and each run of dirty pages it wrote. */
struct backing_wb {
	struct backing *b;
	int pending;
	int err;
	io_done_fn done;
	void *arg;
};

struct backing_wb_run {
	struct backing_wb *wb;
	unsigned long first, npages;
	size_t len;
	bool direct;  /* through b->dfd */
};

static int backing_wb_issue(struct backing *b, struct backing_wb_run *r);

static void backing_wb_put(struct backing_wb *wb)
{
	if (--wb->pending)
		return;
	if (wb->err)
		wb->b->stats.io_errors++;
	if (wb->done)
		wb->done(wb->arg, wb->err);
	backing_put(wb->b);
	free(wb);
}

static void backing_wb_run_done(void *arg, ssize_t res)
{
	struct backing_wb_run *r = arg;
	struct backing_wb *wb = r->wb;

	if (res == -EINVAL && r->direct) {
		/* The device refuses O_DIRECT here: buffered, from now on. */
		wb->b->dfd_writes = false;
		r->direct = false;
		if (backing_wb_issue(wb->b, r) == 0)
			return;
	}
	for (unsigned long j = r->first; j < r->first + r->npages; j++)
		wb->b->writing[j]--;

	if (res < 0) {
		/* Nothing is lost: pages that did not reach the file stay dirty. */
		backing_mark_dirty(wb->b, r->first, r->npages);
		if (!wb->err)
			wb->err = (int)res;
	}
	free(r);
	backing_wb_put(wb);
}

static int backing_wb_issue(struct backing *b, struct backing_wb_run *r)
{
	uint64_t off = (uint64_t)r->first * PAGE_SIZE;

	return io_write(b->table->io, r->direct ? b->dfd : b->fd,
			b->view + off, r->len, (off_t)off, backing_wb_run_done,
			r);
}

int backing_writeback(struct backing *b, unsigned long first,
		      unsigned long npages, io_done_fn done, void *arg)
{
	struct backing_wb *wb;
	unsigned long end = first + npages, i, run;
	int err = 0;

	if (end > b->npages || end < first)
		end = b->npages;
	if (!b->writable)
		return b->nr_dirty ? -EBADF : 0;
	wb = calloc(1, sizeof(*wb));
	if (!wb)
		return -ENOMEM;
	wb->b = b;
	wb->done = done;
	wb->arg = arg;
	wb->pending = 1; /* held until every run is queued */
	backing_hold(b);
	for (i = first; i < end; i += run ? run : 1) {
		uint64_t off = (uint64_t)i * PAGE_SIZE;
		struct backing_wb_run *r;
		size_t len;

		run = 0;
		while (i + run < end && page_test(b->dirty, i + run))
			run++;
		if (!run)
			continue;
		len = run * PAGE_SIZE;
		if (off + len > b->size)
			len = (size_t)(b->size - off); /* never extend the file */
		r = malloc(sizeof(*r));
		if (!r) {
			err = -ENOMEM;
			break;
		}
		/* Whole pages inside the file: O_DIRECT, where it may. */
		*r = (struct backing_wb_run){ .wb = wb, .first = i,
					      .npages = run, .len = len,
					      .direct = b->dfd_writes &&
							len == run * PAGE_SIZE };
		err = backing_wb_issue(b, r);
		if (err) {
			free(r);
			break;
		}
		/* Clean from now: a write arriving later dirties it again.
		   Being written: not to be dropped until every write of it
		   ends (a write reads the page when it runs). */
		for (unsigned long j = i; j < i + run; j++) {
			page_clear(b->dirty, j);
			b->writing[j]++;
		}
		b->nr_dirty -= run;
		b->stats.writeback_ios++;
		b->stats.writeback_pages += run;
		wb->pending++;
	}
	if (err)
		wb->err = err;
	backing_wb_put(wb);
	return 0;
}

unsigned long backing_clean_run(const struct backing *b, unsigned long i,
				unsigned long end)
{
	unsigned long run = 0;

	while (i + run < end && page_test(b->resident, i + run) &&
	       !page_test(b->dirty, i + run) && !page_test(b->reading, i + run) &&
	       !b->writing[i + run])
		run++;
	return run;
}

/*
 * Can extent [lo, hi) be dropped whole: no page of it being read, written
 * back or dirty? (Its holes go with it; punching them changes nothing.)
 */
static bool backing_extent_clean(const struct backing *b, unsigned long lo,
				 unsigned long hi)
{
	for (unsigned long i = lo; i < hi; i++)
		if (page_test(b->reading, i) || page_test(b->dirty, i) ||
		    b->writing[i])
			return false;
	return true;
}

int backing_evict(struct backing *b, unsigned long first, unsigned long npages)
{
	unsigned long end = first + npages, i, run;

	if (end > b->npages)
		end = b->npages;
	for (i = first; i < end; i += run) {
		if (b->huge) {
			/* Whole extents only (backing.h): a page of a large
			   folio punched alone may stay behind as zeroes. */
			run = backing_extent_end(b, i & ~(HUGE_PAGES - 1)) - i;
			if ((i & (HUGE_PAGES - 1)) || i + run > end ||
			    !backing_extent_clean(b, i, i + run))
				continue;
		} else {
			run = backing_clean_run(b, i, end);
			if (!run) {
				run = 1;
				continue;
			}
		}
		if (fallocate(b->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)(i * PAGE_SIZE), (off_t)(run * PAGE_SIZE)))
			return -errno;
		for (unsigned long j = i; j < i + run; j++) {
			if (!page_test(b->resident, j))
				continue;
			backing_account(b, j, false);
			b->stats.evicted_pages++;
		}
	}
	return 0;
}
