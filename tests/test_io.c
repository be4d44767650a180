/*
 * test_io.c - daemon/io.c: io_uring reads, writes and fsyncs driven by a
 * libev loop, and copies on the copy threads, checked byte for byte.
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
#include <unistd.h>

#include <cmocka.h>

#include "io.h"

#define FILE_BYTES (4 << 20)

struct fixture {
	struct ev_loop *loop;
	struct io_ctx io;
	char path[64];
	int fd;
	unsigned char *expect;
};

/* What one request reported. */
struct result {
	int calls;
	ssize_t res;
};

static void record(void *arg, ssize_t res)
{
	struct result *r = arg;

	r->calls++;
	r->res = res;
}

static unsigned char pattern_byte(size_t i)
{
	return (unsigned char)((i * 2654435761u) >> 13);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int err;

	if (!f)
		return -1;
	f->loop = ev_loop_new(EVFLAG_AUTO);
	err = io_init(&f->io, f->loop, 64);
	if (err == -ENOSYS || err == -EPERM) {
		free(f);
		skip();
	}
	assert_int_equal(err, 0);
	strcpy(f->path, "/tmp/upaged-test-io-XXXXXX");
	f->fd = mkstemp(f->path);
	assert_true(f->fd >= 0);
	f->expect = malloc(FILE_BYTES);
	for (size_t i = 0; i < FILE_BYTES; i++)
		f->expect[i] = pattern_byte(i);
	assert_int_equal(pwrite(f->fd, f->expect, FILE_BYTES, 0), FILE_BYTES);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	io_exit(&f->io);
	ev_loop_destroy(f->loop);
	close(f->fd);
	unlink(f->path);
	free(f->expect);
	free(f);
	return 0;
}

/* Runs the loop until every request has called back. */
static void run_until_idle(struct fixture *f)
{
	while (f->io.inflight)
		ev_run(f->loop, EVRUN_ONCE);
}

static void test_read_matches_file(void **state)
{
	struct fixture *f = *state;
	unsigned char *buf = malloc(FILE_BYTES);
	struct result r = { 0 };

	assert_int_equal(io_read(&f->io, f->fd, buf, FILE_BYTES, 0, record, &r),
			 0);
	run_until_idle(f);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.res, FILE_BYTES);
	assert_memory_equal(buf, f->expect, FILE_BYTES);
	assert_int_equal(f->io.stats.read_bytes, FILE_BYTES);
	free(buf);
}

/*
 * io_wait(): with nothing in flight it reports nothing, at once; with a
 * read in flight it returns once the read has called back (the timeout,
 * a minute, is never reached: the completion wakes it), the data whole.
 * The file is out of the kernel's cache first where it can be (not on a
 * tmpfs), so that the read does not end as it is submitted.
 */
static void test_wait_for_a_read(void **state)
{
	struct fixture *f = *state;
	unsigned char *buf = malloc(FILE_BYTES);
	struct result r = { 0 };

	assert_int_equal(fsync(f->fd), 0);
	posix_fadvise(f->fd, 0, 0, POSIX_FADV_DONTNEED);
	assert_false(io_wait(&f->io, 60000000));
	assert_int_equal(io_read(&f->io, f->fd, buf, FILE_BYTES, 0, record, &r),
			 0);
	while (!r.calls)
		assert_true(io_wait(&f->io, 60000000));
	assert_int_equal(r.res, FILE_BYTES);
	assert_memory_equal(buf, f->expect, FILE_BYTES);
	assert_int_equal(f->io.inflight, 0);
	free(buf);
}

/* Many requests queued in one iteration go in with few submissions. */
static void test_batch_of_page_reads(void **state)
{
	struct fixture *f = *state;
	enum { N = 1024 };
	unsigned char *buf = malloc((size_t)N * 4096);
	struct result *r = calloc(N, sizeof(*r));
	size_t i;

	for (i = 0; i < N; i++) {
		/* Pages in a scrambled order, to each its own slot. */
		size_t page = (i * 7919) % N;

		assert_int_equal(io_read(&f->io, f->fd, buf + page * 4096, 4096,
					 (off_t)page * 4096, record, &r[page]),
				 0);
	}
	run_until_idle(f);
	for (i = 0; i < N; i++) {
		assert_int_equal(r[i].calls, 1);
		assert_int_equal(r[i].res, 4096);
	}
	assert_memory_equal(buf, f->expect, (size_t)N * 4096);
	/* 64-slot ring: at least N/64 submits, and far fewer than N. */
	assert_true(f->io.stats.submits >= N / 64);
	assert_true(f->io.stats.submits < N / 4);
	free(r);
	free(buf);
}

static void test_read_past_eof_is_short(void **state)
{
	struct fixture *f = *state;
	unsigned char buf[8192];
	struct result r = { 0 }, r2 = { 0 };

	memset(buf, 0xaa, sizeof(buf));
	assert_int_equal(io_read(&f->io, f->fd, buf, sizeof(buf),
				 FILE_BYTES - 100, record, &r), 0);
	assert_int_equal(io_read(&f->io, f->fd, buf, 4096, FILE_BYTES + 4096,
				 record, &r2), 0);
	run_until_idle(f);
	assert_int_equal(r.res, 100);
	assert_memory_equal(buf, f->expect + FILE_BYTES - 100, 100);
	assert_int_equal(r2.calls, 1);
	assert_int_equal(r2.res, 0);
}

static void test_write_then_fsync(void **state)
{
	struct fixture *f = *state;
	unsigned char page[4096], back[4096];
	struct result w = { 0 }, s = { 0 };

	for (size_t i = 0; i < sizeof(page); i++)
		page[i] = (unsigned char)(255 - i);
	assert_int_equal(io_write(&f->io, f->fd, page, sizeof(page), 12288,
				  record, &w), 0);
	run_until_idle(f);
	assert_int_equal(io_fsync(&f->io, f->fd, record, &s), 0);
	run_until_idle(f);
	assert_int_equal(w.res, 4096);
	assert_int_equal(s.calls, 1);
	assert_int_equal(s.res, 0);
	assert_int_equal(pread(f->fd, back, sizeof(back), 12288), 4096);
	assert_memory_equal(back, page, sizeof(page));
}

static void test_errors_reach_the_callback(void **state)
{
	struct fixture *f = *state;
	int rdonly = open(f->path, O_RDONLY | O_CLOEXEC);
	char buf[4096] = { 0 };
	struct result r = { 0 };

	assert_true(rdonly >= 0);
	assert_int_equal(io_write(&f->io, rdonly, buf, sizeof(buf), 0, record,
				  &r), 0);
	run_until_idle(f);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.res, -EBADF);
	assert_int_equal(f->io.stats.errors, 1);
	close(rdonly);
	/* Bad arguments are refused at once, with nothing queued. */
	assert_int_equal(io_read(&f->io, -1, buf, 1, 0, record, &r), -EINVAL);
	assert_int_equal(io_read(&f->io, f->fd, NULL, 1, 0, record, &r),
			 -EINVAL);
	assert_int_equal(io_read(&f->io, f->fd, buf, 1, -1, record, &r),
			 -EINVAL);
	assert_int_equal(f->io.inflight, 0);
}

static void test_drain_waits_for_everything(void **state)
{
	struct fixture *f = *state;
	unsigned char *buf = malloc(FILE_BYTES);
	struct result r[16] = { { 0 } };

	for (int i = 0; i < 16; i++)
		assert_int_equal(io_read(&f->io, f->fd,
					 buf + (size_t)i * (FILE_BYTES / 16),
					 FILE_BYTES / 16,
					 (off_t)i * (FILE_BYTES / 16), record,
					 &r[i]), 0);
	io_drain(&f->io);
	assert_int_equal(f->io.inflight, 0);
	for (int i = 0; i < 16; i++)
		assert_int_equal(r[i].res, FILE_BYTES / 16);
	assert_memory_equal(buf, f->expect, FILE_BYTES);
	free(buf);
}

/* What a copy reported, and when among the others. */
struct copy_result {
	struct result r;
	int *clock;
	int order;
};

static void record_copy(void *arg, ssize_t res)
{
	struct copy_result *c = arg;

	record(&c->r, res);
	c->order = (*c->clock)++;
}

static int memfd_of(size_t size)
{
	int fd = memfd_create("test-io", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	return fd;
}

/* From memory and from a file, into a memfd at the same offsets. */
static void test_copy_fills_memfd(void **state)
{
	struct fixture *f = *state;
	unsigned char *back = malloc(FILE_BYTES);
	int mfd = memfd_of(FILE_BYTES);
	struct result a = { 0 }, b = { 0 };

	assert_int_equal(io_copy(&f->io, f->fd, NULL, mfd, FILE_BYTES / 2, 0, 0,
				 record, &a), 0);
	assert_int_equal(io_copy(&f->io, -1, f->expect + FILE_BYTES / 2, mfd,
				 FILE_BYTES / 2, FILE_BYTES / 2,
				 IO_COPY_URGENT, record, &b), 0);
	/* Callbacks come from the loop only. */
	assert_int_equal(a.calls + b.calls, 0);
	run_until_idle(f);
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 1);
	assert_int_equal(a.res, FILE_BYTES / 2);
	assert_int_equal(b.res, FILE_BYTES / 2);
	assert_int_equal(pread(mfd, back, FILE_BYTES, 0), FILE_BYTES);
	assert_memory_equal(back, f->expect, FILE_BYTES);
	assert_int_equal(f->io.stats.copies, 2);
	assert_int_equal(f->io.stats.copy_bytes, FILE_BYTES);
	close(mfd);
	free(back);
}

/* A source that ends early gives the shorter count; errors reach done. */
static void test_copy_short_and_errors(void **state)
{
	struct fixture *f = *state;
	int mfd = memfd_of(FILE_BYTES), rdonly;
	struct result r = { 0 }, e = { 0 };
	unsigned char back[100];

	assert_int_equal(io_copy(&f->io, f->fd, NULL, mfd, 8192,
				 FILE_BYTES - 100, 0, record, &r), 0);
	rdonly = open(f->path, O_RDONLY | O_CLOEXEC);
	assert_true(rdonly >= 0);
	assert_int_equal(io_copy(&f->io, -1, f->expect, rdonly, 4096, 0, 0,
				 record, &e), 0);
	run_until_idle(f);
	assert_int_equal(r.res, 100);
	assert_int_equal(pread(mfd, back, 100, FILE_BYTES - 100), 100);
	assert_memory_equal(back, f->expect + FILE_BYTES - 100, 100);
	assert_int_equal(e.calls, 1);
	assert_int_equal(e.res, -EBADF);
	close(rdonly);
	assert_int_equal(io_copy(&f->io, -1, NULL, mfd, 4096, 0, 0, record, &r),
			 -EINVAL);
	assert_int_equal(io_copy(&f->io, f->fd, NULL, -1, 4096, 0, 0, record,
				 &r), -EINVAL);
	assert_int_equal(f->io.inflight, 0);
	close(mfd);
}

/* An urgent copy overtakes the ones still queued, and drain waits for all. */
static void test_copy_urgent_overtakes(void **state)
{
	struct fixture *f = *state;
	enum { N = 32, LEN = FILE_BYTES / N };
	struct copy_result c[N + 1];
	unsigned char *back = malloc(FILE_BYTES);
	int clock = 0, mfd = memfd_of(FILE_BYTES), waiting;

	memset(c, 0, sizeof(c));
	for (int i = 0; i <= N; i++)
		c[i].clock = &clock;
	for (int i = 0; i < N; i++)
		assert_int_equal(io_copy(&f->io, -1, f->expect + i * LEN, mfd,
					 LEN, (off_t)i * LEN, 0, record_copy,
					 &c[i]), 0);
	assert_int_equal(io_copy(&f->io, f->fd, NULL, mfd, LEN, 0,
				 IO_COPY_URGENT, record_copy, &c[N]), 0);
	/* Still waiting now: the urgent copy, unless begun, and others. */
	pthread_mutex_lock(&f->io.lock);
	waiting = (int)f->io.todo_count;
	pthread_mutex_unlock(&f->io.lock);
	io_drain(&f->io);
	assert_int_equal(f->io.inflight, 0);
	for (int i = 0; i <= N; i++) {
		assert_int_equal(c[i].r.calls, 1);
		assert_int_equal(c[i].r.res, LEN);
	}
	/* The others still waiting then all end after it. */
	assert_true(c[N].order <= N - waiting + 1);
	assert_int_equal(pread(mfd, back, FILE_BYTES, 0), FILE_BYTES);
	assert_memory_equal(back, f->expect, FILE_BYTES);
	close(mfd);
	free(back);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_read_matches_file, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_wait_for_a_read, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_batch_of_page_reads, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_read_past_eof_is_short,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_then_fsync, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_errors_reach_the_callback,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_drain_waits_for_everything,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_fills_memfd, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_copy_short_and_errors,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_urgent_overtakes,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
