/*
 * test_backing.c - daemon/backing.c: the memfd page cache of a file, read
 * through io_uring with readahead, written back, evicted and resized;
 * contents checked byte for byte against the file and through a second,
 * independent mapping of the memfd (what a client sees).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "backing.h"

#define FILE_PAGES 1024UL

struct fixture {
	struct ev_loop *loop;
	struct io_ctx io;
	struct backing_table table;
	char path[64];
	int fd;
	size_t size;
	unsigned char *expect;
	/* What the ready callback saw. */
	unsigned long ready_calls, ready_pages;
	int last_err;
};

static struct fixture *current;

static void on_ready(struct backing *b, unsigned long first,
		     unsigned long npages, int err)
{
	(void)b;
	(void)first;
	current->ready_calls++;
	current->ready_pages += npages;
	current->last_err = err;
}

static void make_file(struct fixture *f, size_t size)
{
	f->size = size;
	f->expect = malloc(size);
	for (size_t i = 0; i < size; i++)
		f->expect[i] = (unsigned char)((i * 2654435761u) >> 11);
	assert_int_equal(ftruncate(f->fd, 0), 0);
	assert_int_equal(pwrite(f->fd, f->expect, size, 0), (ssize_t)size);
}

static int setup_size(void **state, size_t size)
{
	struct fixture *f = calloc(1, sizeof(*f));

	f->loop = ev_loop_new(EVFLAG_AUTO);
	if (io_init(&f->io, f->loop, 128)) {
		free(f);
		skip();
	}
	assert_int_equal(backing_table_init(&f->table, &f->io, on_ready), 0);
	strcpy(f->path, "/tmp/upaged-test-backing-XXXXXX");
	f->fd = mkstemp(f->path);
	assert_true(f->fd >= 0);
	make_file(f, size);
	current = f;
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_size(state, FILE_PAGES * PAGE_SIZE);
}

/* A file whose last page is partial. */
static int setup_tail(void **state)
{
	return setup_size(state, 2 * PAGE_SIZE + 1000);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	backing_table_exit(&f->table);
	io_exit(&f->io);
	ev_loop_destroy(f->loop);
	close(f->fd);
	unlink(f->path);
	free(f->expect);
	free(f);
	return 0;
}

static void run_until_idle(struct fixture *f)
{
	while (f->io.inflight)
		ev_run(f->loop, EVRUN_ONCE);
}

/* Maps the page cache as a client would: a shared mapping of the memfd. */
static unsigned char *client_view(struct backing *b)
{
	void *p = mmap(NULL, b->npages * PAGE_SIZE, PROT_READ, MAP_SHARED,
		       b->memfd, 0);

	assert_true(p != MAP_FAILED);
	return p;
}

static void test_read_fills_page_cache(void **state)
{
	struct fixture *f = *state;
	struct backing *b;
	unsigned char *view;

	assert_int_equal(backing_get(&f->table, f->fd, &b), 0);
	assert_int_equal(b->npages, FILE_PAGES);
	assert_int_equal(backing_read(b, 10), 0);
	assert_true(backing_reading(b, 10));
	/* Asking again while the read is in flight reads nothing twice. */
	assert_int_equal(backing_read(b, 10), 0);
	assert_int_equal(b->stats.read_ios, 1);
	run_until_idle(f);
	assert_true(backing_resident(b, 10));
	assert_false(backing_reading(b, 10));
	assert_int_equal(backing_read(b, 10), 1);
	assert_int_equal(f->last_err, 0);
	assert_int_equal(f->ready_pages, RA_MIN_PAGES);
	view = client_view(b);
	assert_memory_equal(view + 10 * PAGE_SIZE, f->expect + 10 * PAGE_SIZE,
			    RA_MIN_PAGES * PAGE_SIZE);
	/* Pages outside the window were not read: still holes. */
	assert_false(backing_resident(b, 9));
	assert_false(backing_resident(b, 10 + RA_MIN_PAGES));
	munmap(view, b->npages * PAGE_SIZE);
	backing_put(b);
}

/*
 * Pages the kernel has cached are spliced into the memfd; others are read
 * into a buffer first. Both end in the memfd whole, by the copy thread.
 */
static void test_cached_and_uncached_runs(void **state)
{
	struct fixture *f = *state;
	struct backing *b;
	unsigned char *view;

	assert_int_equal(backing_get(&f->table, f->fd, &b), 0);
	assert_int_equal(backing_read(b, 0), 0);
	run_until_idle(f);
	assert_int_equal(f->io.stats.reads, 0);
	assert_int_equal(f->io.stats.copies, 1);
	assert_int_equal(fsync(f->fd), 0);
	assert_int_equal(posix_fadvise(f->fd, 0, 0, POSIX_FADV_DONTNEED), 0);
	assert_int_equal(backing_read(b, 100), 0);
	run_until_idle(f);
	assert_int_equal(f->io.stats.reads, 1);
	assert_int_equal(f->io.stats.copies, 2);
	assert_int_equal(f->last_err, 0);
	view = client_view(b);
	assert_memory_equal(view, f->expect, RA_MIN_PAGES * PAGE_SIZE);
	assert_memory_equal(view + 100 * PAGE_SIZE, f->expect + 100 * PAGE_SIZE,
			    RA_MIN_PAGES * PAGE_SIZE);
	munmap(view, b->npages * PAGE_SIZE);
	backing_put(b);
}

static void test_same_file_same_object(void **state)
{
	struct fixture *f = *state;
	struct backing *a, *b;
	int ro = open(f->path, O_RDONLY | O_CLOEXEC);

	assert_int_equal(backing_get(&f->table, ro, &a), 0);
	assert_false(a->writable);
	assert_int_equal(backing_get(&f->table, f->fd, &b), 0);
	assert_ptr_equal(a, b);
	/* The writable fd replaced the read-only one for write-back. */
	assert_true(a->writable);
	assert_int_equal(a->refs, 2);
	assert_int_equal(f->table.count, 1);
	close(ro);
	backing_put(a);
	backing_put(b);
	assert_int_equal(f->table.count, 0);
}

static void test_not_a_regular_file(void **state)
{
	struct fixture *f = *state;
	struct backing *b;
	int p[2];

	assert_int_equal(pipe(p), 0);
	assert_int_equal(backing_get(&f->table, p[0], &b), -ENODEV);
	assert_int_equal(backing_get(&f->table, -1, &b), -EBADF);
	close(p[0]);
	close(p[1]);
}

/* Faults that follow each other grow the window; a jump resets it. */
static void test_readahead_grows_and_resets(void **state)
{
	struct fixture *f = *state;
	unsigned long pg = 0, expect = RA_MIN_PAGES, windows = 0;
	struct backing *b;
	unsigned char *view;

	assert_int_equal(backing_get(&f->table, f->fd, &b), 0);
	while (pg < 600) {
		assert_int_equal(backing_read(b, pg), 0);
		run_until_idle(f);
		assert_int_equal(b->ra_size, expect);
		pg += expect; /* the next fault lands just after the window */
		expect = expect * 2 > RA_MAX_PAGES ? RA_MAX_PAGES : expect * 2;
		windows++;
	}
	assert_true(b->ra_size == RA_MAX_PAGES);
	assert_int_equal(b->stats.read_ios, windows);
	/* A random jump falls back to the smallest window. */
	assert_int_equal(backing_read(b, 900), 0);
	run_until_idle(f);
	assert_int_equal(b->ra_size, RA_MIN_PAGES);
	view = client_view(b);
	assert_memory_equal(view, f->expect, pg * PAGE_SIZE);
	assert_memory_equal(view + 900 * PAGE_SIZE, f->expect + 900 * PAGE_SIZE,
			    RA_MIN_PAGES * PAGE_SIZE);
	munmap(view, b->npages * PAGE_SIZE);
	backing_put(b);
}

static void test_window_stops_at_resident_pages(void **state)
{
	struct fixture *f = *state;
	struct backing *b;

	assert_int_equal(backing_get(&f->table, f->fd, &b), 0);
	assert_int_equal(backing_read(b, 2), 0);
	run_until_idle(f);
	/* Window [0, 4) overlaps resident [2, 6): only 0 and 1 are read. */
	assert_int_equal(backing_read(b, 0), 0);
	run_until_idle(f);
	assert_int_equal(b->stats.read_pages, RA_MIN_PAGES + 2);
	assert_int_equal(b->nr_resident, RA_MIN_PAGES + 2);
	backing_put(b);
}

static void test_eof_tail_is_zero(void **state)
{
	struct fixture *f = *state;
	unsigned char *view;
	struct backing *b;
	struct stat st;

	assert_int_equal(backing_get(&f->table, f->fd, &b), 0);
	assert_int_equal(b->npages, 3);
	/* The memfd ends where the file's last page ends: beyond is SIGBUS. */
	assert_int_equal(fstat(b->memfd, &st), 0);
	assert_int_equal(st.st_size, 3 * PAGE_SIZE);
	assert_int_equal(backing_read(b, 3), -EFAULT);
	assert_int_equal(backing_read(b, 0), 0);
	run_until_idle(f);
	view = client_view(b);
	assert_memory_equal(view, f->expect, f->size);
	for (size_t i = f->size; i < 3 * PAGE_SIZE; i++)
		assert_int_equal(view[i], 0);
	munmap(view, 3 * PAGE_SIZE);
	backing_put(b);
}

static void test_writeback_reaches_file(void **state)
{
	struct fixture *f = *state;
	unsigned char page[PAGE_SIZE], back[PAGE_SIZE];
	unsigned char *client;
	struct backing *b;

	assert_int_equal(backing_get(&f->table, f->fd, &b), 0);
	assert_int_equal(backing_read(b, 5), 0);
	run_until_idle(f);
	/* A client writes through its shared mapping. */
	client = mmap(NULL, b->npages * PAGE_SIZE, PROT_READ | PROT_WRITE,
		      MAP_SHARED, b->memfd, 0);
	assert_true(client != MAP_FAILED);
	memset(page, 0x5a, sizeof(page));
	memcpy(client + 6 * PAGE_SIZE, page, PAGE_SIZE);
	backing_mark_dirty(b, 6, 1);
	assert_int_equal(b->nr_dirty, 1);
	/* Not written until asked. */
	assert_int_equal(pread(f->fd, back, PAGE_SIZE, 6 * PAGE_SIZE),
			 PAGE_SIZE);
	assert_memory_equal(back, f->expect + 6 * PAGE_SIZE, PAGE_SIZE);
	assert_int_equal(backing_writeback(b, 0, b->npages, NULL, NULL), 0);
	run_until_idle(f);
	assert_int_equal(b->nr_dirty, 0);
	assert_int_equal(pread(f->fd, back, PAGE_SIZE, 6 * PAGE_SIZE),
			 PAGE_SIZE);
	assert_memory_equal(back, page, PAGE_SIZE);
	/* Its neighbours were not touched. */
	assert_int_equal(pread(f->fd, back, PAGE_SIZE, 5 * PAGE_SIZE),
			 PAGE_SIZE);
	assert_memory_equal(back, f->expect + 5 * PAGE_SIZE, PAGE_SIZE);
	munmap(client, b->npages * PAGE_SIZE);
	backing_put(b);
}

static void count_done(void *arg, ssize_t res)
{
	int *r = arg;

	*r = (int)res;
}

/* A write-back that fails keeps the pages dirty: nothing is lost. */
static void test_writeback_error_keeps_dirty(void **state)
{
	struct fixture *f = *state;
	struct backing *b;
	int res = 1, ro;

	assert_int_equal(backing_get(&f->table, f->fd, &b), 0);
	assert_int_equal(backing_read(b, 0), 0);
	run_until_idle(f);
	backing_mark_dirty(b, 1, 2);
	/* Swap the object's fds (its O_DIRECT one writes whole pages) for
	   read-only ones: writes now fail. */
	ro = open(f->path, O_RDONLY | O_CLOEXEC);
	assert_true(dup3(ro, b->fd, O_CLOEXEC) >= 0);
	if (b->dfd >= 0)
		assert_true(dup3(ro, b->dfd, O_CLOEXEC) >= 0);
	close(ro);
	assert_int_equal(backing_writeback(b, 0, b->npages, count_done, &res),
			 0);
	run_until_idle(f);
	assert_int_equal(res, -EBADF);
	assert_int_equal(b->nr_dirty, 2);
	assert_int_equal(b->stats.io_errors, 1);
	/* Drop them so the fixture can tear down. */
	memset(b->dirty, 0, sizeof(uint64_t));
	b->nr_dirty = 0;
	backing_put(b);
}

static void test_evict_punches_every_mapper(void **state)
{
	struct fixture *f = *state;
	unsigned char *view;
	struct backing *b;

	assert_int_equal(backing_get(&f->table, f->fd, &b), 0);
	assert_int_equal(backing_read(b, 0), 0);
	run_until_idle(f);
	view = client_view(b);
	assert_memory_equal(view, f->expect, RA_MIN_PAGES * PAGE_SIZE);
	backing_mark_dirty(b, 3, 1);
	assert_int_equal(backing_evict(b, 0, RA_MIN_PAGES), 0);
	/* Clean pages are gone from the shared cache; the dirty one stays. */
	assert_int_equal(b->nr_resident, 1);
	assert_true(backing_resident(b, 3));
	for (size_t i = 0; i < 3 * PAGE_SIZE; i++)
		assert_int_equal(view[i], 0);
	assert_memory_equal(view + 3 * PAGE_SIZE, f->expect + 3 * PAGE_SIZE,
			    PAGE_SIZE);
	assert_int_equal(f->table.resident_pages, 1);
	b->nr_dirty = 0;
	memset(b->dirty, 0, sizeof(uint64_t));
	munmap(view, b->npages * PAGE_SIZE);
	backing_put(b);
}

static void test_truncate_and_grow(void **state)
{
	struct fixture *f = *state;
	struct backing *b;
	struct stat st;

	assert_int_equal(backing_get(&f->table, f->fd, &b), 0);
	assert_int_equal(backing_read(b, 8), 0);
	run_until_idle(f);
	assert_int_equal(ftruncate(f->fd, 9 * PAGE_SIZE + 10), 0);
	assert_int_equal(backing_refresh_size(b), 0);
	assert_int_equal(b->npages, 10);
	assert_int_equal(b->nr_resident, 2); /* pages 8 and 9 */
	assert_int_equal(fstat(b->memfd, &st), 0);
	assert_int_equal(st.st_size, 10 * PAGE_SIZE);
	assert_int_equal(backing_read(b, 10), -EFAULT);
	/* Growing again makes the new pages readable. */
	assert_int_equal(ftruncate(f->fd, 20 * PAGE_SIZE), 0);
	assert_int_equal(backing_refresh_size(b), 0);
	assert_int_equal(b->npages, 20);
	assert_int_equal(backing_read(b, 15), 0);
	run_until_idle(f);
	assert_true(backing_resident(b, 15));
	backing_put(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_read_fills_page_cache,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_same_file_same_object,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_regular_file, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_readahead_grows_and_resets,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_window_stops_at_resident_pages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eof_tail_is_zero,
						setup_tail, teardown),
		cmocka_unit_test_setup_teardown(test_cached_and_uncached_runs,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_writeback_reaches_file,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_writeback_error_keeps_dirty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_evict_punches_every_mapper,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncate_and_grow, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
