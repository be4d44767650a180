/*
 * test_daemon_file.c - file-backed paging end to end: shared and private
 * mappings checked byte for byte against the file, one physical copy for
 * many processes (smaps Pss), copy-on-write isolation, write-back on
 * msync, on a writer's SIGKILL and on the daemon's SIGTERM, end of file
 * (zero tail, SIGBUS beyond), truncation while mapped, protections as the
 * kernel gives them, and a 1 GiB file read in full.
 *
 * Helper processes are this program run again ("helper ROLE ..."): each is
 * a client of its own, reports on stdout and waits for stdin to close.
 */
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <cmocka.h>

#include <upage/upage.h>

#include "upaged_harness.h"
#include "upaged_filetest.h"

#define PG FT_PG

static struct harness h;
static char dir[64];

static int group_setup(void **state)
{
	strcpy(dir, "/tmp/upaged-file-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	return harness_group_start(&h, 8UL << 30);
}

static int group_teardown(void **state)
{
	ft_rmdir(dir);
	return harness_group_stop(&h);
}

static void path_of(char *buf, const char *name)
{
	snprintf(buf, 128, "%s/%s", dir, name);
}

/*
 * A new file at path, size bytes of pattern seed, mapped read-only and
 * shared (len bytes, through an fd opened with oflags).
 */
static unsigned char *map_new_file(const char *path, size_t size,
				   unsigned seed, int oflags, size_t len)
{
	unsigned char *p;

	assert_int_equal(ft_make_file(path, size, seed), 0);
	p = ft_map_file(path, oflags, len, PROT_READ, MAP_SHARED, 0);
	assert_ptr_not_equal(p, MAP_FAILED);
	return p;
}

/* ---- helpers (other processes) ---- */

/*
 * writer SOCK PATH NPAGES: maps all shared read-write; writes pattern 2
 * to the first half, msyncs, reports "synced"; writes pattern 3 to the
 * second half, reports "written"; never syncs that.
 */
static int helper_writer(char **argv)
{
	struct upage_options o = { .socket_path = argv[0],
				   .arena_size = 1UL << 30 };
	unsigned long n = strtoul(argv[2], NULL, 0), half = n / 2 * PG;
	unsigned char *p;
	int fd;

	if (upage_connect(&o) < 0)
		return 2;
	fd = open(argv[1], O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return 3;
	p = upage_mmap(NULL, n * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return 4;
	close(fd);
	for (unsigned long i = 0; i < half; i++)
		p[i] = ft_pat(i, 2);
	if (upage_msync(p, half, MS_SYNC) < 0)
		return 5;
	printf("synced\n");
	fflush(stdout);
	for (unsigned long i = half; i < n * PG; i++)
		p[i] = ft_pat(i, 3);
	printf("written\n");
	fflush(stdout);
	ft_wait_for_eof();
	return 0;
}

/*
 * poison SOCK BAD GOOD: maps both files shared; a read of BAD must raise
 * SIGBUS (its backing read fails), GOOD must read back its pattern.
 * Reports "sigbus ok", and does it twice: the poisoned page stays so.
 */
static int helper_poison(char **argv)
{
	struct upage_options o = { .socket_path = argv[0],
				   .arena_size = 1UL << 30 };
	unsigned char *bad, *good, v;
	int fd;

	if (upage_connect(&o) < 0)
		return 2;
	fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	bad = upage_mmap(NULL, 4 * PG, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	fd = open(argv[2], O_RDONLY | O_CLOEXEC);
	good = upage_mmap(NULL, 4 * PG, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (bad == MAP_FAILED || good == MAP_FAILED)
		return 4;
	for (int round = 0; round < 2; round++) {
		if (ft_touch(bad + PG + 7, &v) != SIGBUS)
			return 5;
		for (unsigned long i = 0; i < 4 * PG; i++)
			if (good[i] != ft_pat(i, 1))
				return 6;
	}
	printf("sigbus ok\n");
	fflush(stdout);
	ft_wait_for_eof();
	return 0;
}

/*
 * scatter SOCK PATH NPAGES SEED: maps all of PATH (pattern 1) shared and
 * reads its pages in an order of its own (in order for seed 0, the way
 * that meets readahead), a page at a time, checking
 * every byte the moment its page is first touched; reports "ok" or
 * "bad PAGE".
 */
static int helper_scatter(char **argv)
{
	struct upage_options o = { .socket_path = argv[0],
				   .arena_size = 1UL << 30 };
	unsigned long n = strtoul(argv[2], NULL, 0);
	uint32_t *order = malloc(n * sizeof(*order));
	unsigned char *p;
	int fd;

	if (!order || upage_connect(&o) < 0)
		return 2;
	fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 3;
	p = upage_mmap(NULL, n * PG, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return 4;
	if (strtoull(argv[3], NULL, 0))
		ft_shuffle(order, (uint32_t)n, strtoull(argv[3], NULL, 0));
	else
		for (unsigned long k = 0; k < n; k++)
			order[k] = (uint32_t)k;
	for (unsigned long k = 0; k < n; k++)
		for (unsigned long i = order[k] * PG; i < (order[k] + 1) * PG;
		     i++)
			if (p[i] != ft_pat(i, 1)) {
				printf("bad %u\n", order[k]);
				return 5;
			}
	printf("ok\n");
	fflush(stdout);
	free(order);
	ft_wait_for_eof();
	return 0;
}

static int helper_main(int argc, char **argv)
{
	if (argc >= 7 && !strcmp(argv[2], "scatter"))
		return helper_scatter(argv + 3);
	if (argc >= 6 && !strcmp(argv[2], "poison"))
		return helper_poison(argv + 3);
	if (argc >= 7 && !strcmp(argv[2], "reader"))
		return ft_helper_reader(argv + 3);
	if (argc >= 6 && !strcmp(argv[2], "writer"))
		return helper_writer(argv + 3);
	return 100;
}

/* ---- tests ---- */

static void test_shared_read_matches_file(void **state)
{
	char path[128], perms[5];
	unsigned long off;
	unsigned char *p;

	path_of(path, "shared");
	assert_int_equal(ft_make_file(path, 300 * PG, 1), 0);
	/* At an offset, as the kernel allows. */
	p = ft_map_file(path, O_RDONLY, 200 * PG, PROT_READ, MAP_SHARED, 64 * PG);
	assert_ptr_not_equal(p, MAP_FAILED);
	for (size_t i = 0; i < 200 * PG; i++)
		if (p[i] != ft_pat(64 * PG + i, 1))
			fail_msg("byte %zu differs", i);
	/* The kernel's view: the page cache at the file's own offset. A
	   read-only fd's shared mapping is a private one of the cache (the
	   kernel registers only ranges that may be written), "r--p". */
	assert_int_equal(ft_maps_perms(getpid(), (unsigned long)p, perms, &off), 0);
	assert_string_equal(perms, "r--p");
	assert_int_equal(off, 64 * PG);
	assert_int_equal(upage_munmap(p, 200 * PG), 0);
	unlink(path);
}

static void test_private_cow_isolation(void **state)
{
	unsigned char *shared, *priv, *priv2;
	char path[128], perms[5];
	unsigned long off;

	path_of(path, "cow");
	assert_int_equal(ft_make_file(path, 64 * PG, 1), 0);
	/* A read-only fd allows a writable private mapping. */
	priv = ft_map_file(path, O_RDONLY, 64 * PG, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE, 0);
	assert_ptr_not_equal(priv, MAP_FAILED);
	shared = ft_map_file(path, O_RDWR, 64 * PG, PROT_READ, MAP_SHARED, 0);
	assert_ptr_not_equal(shared, MAP_FAILED);
	priv2 = ft_map_file(path, O_RDONLY, 64 * PG, PROT_READ, MAP_PRIVATE, 0);
	assert_ptr_not_equal(priv2, MAP_FAILED);
	assert_int_equal(ft_maps_perms(getpid(), (unsigned long)priv, perms, &off), 0);
	assert_string_equal(perms, "rw-p");
	/* Read some pages first (shared with the cache), write others
	   first (the write fault fills the cache, then copies). */
	for (size_t i = 0; i < 32 * PG; i++)
		assert_int_equal(priv[i], ft_pat(i, 1));
	for (size_t i = 0; i < 64 * PG; i += 3)
		priv[i] = (unsigned char)~ft_pat(i, 1);
	for (size_t i = 0; i < 64 * PG; i++) {
		unsigned char want = ft_pat(i, 1);

		if (shared[i] != want || priv2[i] != want)
			fail_msg("byte %zu leaked from the private copy", i);
		if (priv[i] != (i % 3 ? want : (unsigned char)~want))
			fail_msg("private byte %zu wrong", i);
	}
	assert_int_equal(upage_msync(shared, 64 * PG, MS_SYNC), 0);
	assert_int_equal(ft_file_has(path, 0, 64 * PG, 1), 0);
	assert_int_equal(upage_munmap(priv, 64 * PG), 0);
	assert_int_equal(upage_munmap(shared, 64 * PG), 0);
	assert_int_equal(upage_munmap(priv2, 64 * PG), 0);
	assert_int_equal(ft_file_has(path, 0, 64 * PG, 1), 0);
	unlink(path);
}

static void test_shared_write_msync_and_unmap(void **state)
{
	unsigned char *a, *b;
	char path[128], perms[5];
	unsigned long off;

	path_of(path, "write");
	assert_int_equal(ft_make_file(path, 40 * PG + 123, 1), 0);
	a = ft_map_file(path, O_RDWR, 41 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
	b = ft_map_file(path, O_RDWR, 41 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
	assert_ptr_not_equal(a, MAP_FAILED);
	assert_ptr_not_equal(b, MAP_FAILED);
	assert_int_equal(ft_maps_perms(getpid(), (unsigned long)a, perms, &off), 0);
	assert_string_equal(perms, "rw-s");
	/* One copy: a write through a is at once in b. */
	for (size_t i = 0; i < 20 * PG; i++)
		a[i] = ft_pat(i, 2);
	for (size_t i = 0; i < 20 * PG; i++)
		if (b[i] != ft_pat(i, 2))
			fail_msg("byte %zu not seen by the other mapping", i);
	assert_int_equal(upage_msync(a, 20 * PG, MS_SYNC), 0);
	assert_int_equal(ft_file_has(path, 0, 20 * PG, 2), 0);
	assert_int_equal(ft_file_has(path, 20 * PG, 20 * PG + 123, 1), 0);
	/* Written again after the sync, then an mprotect to read-only: the
	   pages must still reach the file. */
	for (size_t i = 0; i < 8 * PG; i++)
		a[i] = ft_pat(i, 4);
	assert_int_equal(upage_mprotect(a, 41 * PG, PROT_READ), 0);
	assert_int_equal(upage_msync(b, 41 * PG, MS_SYNC), 0);
	assert_int_equal(ft_file_has(path, 0, 8 * PG, 4), 0);
	/* Writes through b, no msync: unmapping the last mapping writes
	   them, and never past the end of the file. */
	for (size_t i = 20 * PG; i < 40 * PG + 123; i++)
		b[i] = ft_pat(i, 5);
	assert_int_equal(upage_munmap(b, 41 * PG), 0);
	assert_int_equal(upage_munmap(a, 41 * PG), 0);
	/* An msync on another mapping waits for write-backs in flight. */
	a = ft_map_file(path, O_RDWR, PG, PROT_READ, MAP_SHARED, 0);
	assert_ptr_not_equal(a, MAP_FAILED);
	assert_int_equal(upage_msync(a, PG, MS_SYNC), 0);
	assert_int_equal(ft_file_has(path, 20 * PG, 20 * PG + 123, 5), 0);
	{
		struct stat st;

		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_size, 40 * PG + 123);
	}
	assert_int_equal(upage_munmap(a, PG), 0);
	unlink(path);
}

static void test_eof_tail_and_sigbus(void **state)
{
	unsigned char *p, v;
	char path[128];

	path_of(path, "eof");
	p = map_new_file(path, 5 * PG + 100, 1, O_RDONLY, 8 * PG);
	for (size_t i = 0; i < 5 * PG + 100; i++)
		assert_int_equal(p[i], ft_pat(i, 1));
	for (size_t i = 5 * PG + 100; i < 6 * PG; i++)
		assert_int_equal(p[i], 0);
	assert_int_equal(ft_touch(p + 6 * PG, &v), SIGBUS);
	assert_int_equal(ft_touch(p + 7 * PG + 5, &v), SIGBUS);
	assert_int_equal(upage_munmap(p, 8 * PG), 0);
	/* Private: the same, never a zero page invented past the end. */
	p = ft_map_file(path, O_RDONLY, 8 * PG, PROT_READ | PROT_WRITE,
		        MAP_PRIVATE, 0);
	assert_ptr_not_equal(p, MAP_FAILED);
	assert_int_equal(ft_poke(p + 6 * PG, 1), SIGBUS);
	assert_int_equal(ft_touch(p + 5 * PG + 99, &v), 0);
	assert_int_equal(v, ft_pat(5 * PG + 99, 1));
	assert_int_equal(upage_munmap(p, 8 * PG), 0);
	unlink(path);
}

/*
 * A new file of npages pages of pattern 1 at path, mapped shared (fd
 * opened with oflags), its first nread pages read and checked; then the
 * file is truncated to size.
 */
static unsigned char *trunc_map(const char *path, int oflags, size_t npages,
				size_t nread, off_t size)
{
	unsigned char *p;

	p = map_new_file(path, npages * PG, 1, oflags, npages * PG);
	for (size_t i = 0; i < nread * PG; i++)
		assert_int_equal(p[i], ft_pat(i, 1));
	assert_int_equal(truncate(path, size), 0);
	return p;
}

/*
 * A truncation by another file descriptor is seen without a fault: once
 * the daemon has answered anything asked after it, the pages it cut off
 * raise SIGBUS though they were in the cache and mapped, and the rest of
 * the new last page reads as zeroes, as with the kernel's own mmap.
 */
static void test_truncate_seen_without_fault(void **state)
{
	struct upage_status_reply s;
	unsigned char *p, v;
	char path[128];

	path_of(path, "trunc-seen");
	p = trunc_map(path, O_RDONLY, 64, 64, 8 * PG + 5);
	assert_int_equal(ft_status_of(h.sock, &s), 0);
	assert_int_equal(ft_touch(p + 20 * PG, &v), SIGBUS);
	assert_int_equal(ft_touch(p + 9 * PG, &v), SIGBUS);
	for (size_t i = 0; i < 8 * PG + 5; i++)
		assert_int_equal(p[i], ft_pat(i, 1));
	for (size_t i = 8 * PG + 5; i < 9 * PG; i++)
		assert_int_equal(p[i], 0);
	assert_int_equal(upage_munmap(p, 64 * PG), 0);
	unlink(path);
}

static void test_truncate_while_mapped(void **state)
{
	unsigned char *p, v;
	char path[128];

	path_of(path, "trunc");
	p = trunc_map(path, O_RDWR, 1024, 16, 8 * PG);
	/* An untouched page past the new end, then the pages that were in
	   the cache before: all gone, as with the kernel. */
	assert_int_equal(ft_touch(p + 600 * PG, &v), SIGBUS);
	for (size_t pg = 8; pg < 16; pg++)
		assert_int_equal(ft_touch(p + pg * PG, &v), SIGBUS);
	for (size_t i = 0; i < 8 * PG; i++)
		assert_int_equal(p[i], ft_pat(i, 1));
	assert_int_equal(upage_munmap(p, 1024 * PG), 0);
	unlink(path);
}

static void test_protections(void **state)
{
	unsigned char *p, v;
	char path[128], perms[5];
	unsigned long off;
	int fd;

	path_of(path, "prot");
	assert_int_equal(ft_make_file(path, 16 * PG, 1), 0);
	/* No writable shared mapping from a read-only fd. */
	p = ft_map_file(path, O_RDONLY, 16 * PG, PROT_READ | PROT_WRITE,
		        MAP_SHARED, 0);
	assert_ptr_equal(p, MAP_FAILED);
	assert_int_equal(errno, EACCES);
	/* Nor one made writable later. */
	p = ft_map_file(path, O_RDONLY, 16 * PG, PROT_READ, MAP_SHARED, 0);
	assert_ptr_not_equal(p, MAP_FAILED);
	assert_int_equal(upage_mprotect(p, 16 * PG, PROT_READ | PROT_WRITE), -1);
	assert_int_equal(errno, EACCES);
	assert_int_equal(ft_poke(p, 1), SIGSEGV);
	assert_int_equal(upage_munmap(p, 16 * PG), 0);
	/* A write-only fd cannot be mapped at all. */
	p = ft_map_file(path, O_WRONLY, 16 * PG, PROT_WRITE, MAP_SHARED, 0);
	assert_ptr_equal(p, MAP_FAILED);
	assert_int_equal(errno, EACCES);
	/* A bad fd, a directory. */
	assert_ptr_equal(upage_mmap(NULL, PG, PROT_READ, MAP_SHARED, 9999, 0),
			 MAP_FAILED);
	assert_int_equal(errno, EBADF);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_ptr_equal(upage_mmap(NULL, PG, PROT_READ, MAP_SHARED, fd, 0),
			 MAP_FAILED);
	assert_int_equal(errno, ENODEV);
	close(fd);
	/* PROT_NONE, then readable: the data arrives. */
	p = ft_map_file(path, O_RDWR, 16 * PG, PROT_NONE, MAP_SHARED, 0);
	assert_ptr_not_equal(p, MAP_FAILED);
	assert_int_equal(ft_touch(p, &v), SIGSEGV);
	assert_int_equal(upage_mprotect(p, 16 * PG, PROT_READ), 0);
	assert_int_equal(ft_touch(p + PG + 7, &v), 0);
	assert_int_equal(v, ft_pat(PG + 7, 1));
	assert_int_equal(upage_munmap(p, 16 * PG), 0);
	/* Exec. */
	p = ft_map_file(path, O_RDONLY, 16 * PG, PROT_READ | PROT_EXEC,
		        MAP_PRIVATE, 0);
	assert_ptr_not_equal(p, MAP_FAILED);
	assert_int_equal(ft_maps_perms(getpid(), (unsigned long)p, perms, &off), 0);
	assert_string_equal(perms, "r-xp");
	assert_int_equal(p[3 * PG], ft_pat(3 * PG, 1));
	assert_int_equal(upage_munmap(p, 16 * PG), 0);
	/* An unaligned offset. */
	p = ft_map_file(path, O_RDONLY, PG, PROT_READ, MAP_SHARED, 100);
	assert_ptr_equal(p, MAP_FAILED);
	assert_int_equal(errno, EINVAL);
	unlink(path);
}

static int spawn_reader(struct ft_helper *hp, const char *path,
			unsigned long first, unsigned long n,
			unsigned long *addr)
{
	char a[32], b[32], line[64];
	char *argv[] = { "test", "helper", "reader", h.sock, (char *)path, a,
			 b, NULL };

	snprintf(a, sizeof(a), "%lu", first);
	snprintf(b, sizeof(b), "%lu", n);
	if (ft_spawn(hp, argv) < 0 || ft_report(hp, line, sizeof(line)) < 0)
		return -1;
	return sscanf(line, "ok %lx", addr) == 1 ? 0 : -1;
}

/*
 * k processes map overlapping ranges of one file: every page they map
 * exists once, so their Pss adds up to the distinct pages mapped, while
 * their Rss adds up to everything each one maps.
 */
static void many_readers(int k)
{
	enum { FILE_PAGES = 256, EACH = 128, STEP = 16 };
	struct ft_helper hp[8];
	unsigned long addr[8];
	long rss, pss, sum_rss = 0, sum_pss = 0;
	unsigned long distinct = EACH + (k - 1) * STEP;
	char path[128];

	path_of(path, "many");
	assert_int_equal(ft_make_file(path, FILE_PAGES * PG, 1), 0);
	for (int i = 0; i < k; i++)
		assert_int_equal(spawn_reader(&hp[i], path, i * STEP, EACH,
					      &addr[i]), 0);
	for (int i = 0; i < k; i++) {
		assert_int_equal(ft_smaps(hp[i].pid, addr[i], &rss, &pss), 0);
		assert_int_equal(rss, EACH * 4);
		sum_rss += rss;
		sum_pss += pss;
	}
	/* Pss is rounded down per VMA: at most k kB short. */
	print_message("%d readers: Rss %ld kB, Pss %ld kB, %lu distinct pages\n",
		      k, sum_rss, sum_pss, distinct);
	assert_true(sum_pss <= (long)distinct * 4);
	assert_true(sum_pss >= (long)distinct * 4 - k);
	for (int i = 0; i < k; i++)
		assert_int_equal(ft_finish(&hp[i], 0), 0);
	unlink(path);
}

static void test_two_readers_one_copy(void **state)
{
	many_readers(2);
}

static void test_eight_readers_one_copy(void **state)
{
	many_readers(8);
}

static void test_writer_sync_then_sigkill(void **state)
{
	char path[128], n[16] = "64", line[64];
	char *argv[] = { "test", "helper", "writer", h.sock, path, n, NULL };
	struct ft_helper hp;
	unsigned char *p;

	path_of(path, "kill");
	assert_int_equal(ft_make_file(path, 64 * PG, 1), 0);
	assert_int_equal(ft_spawn(&hp, argv), 0);
	assert_int_equal(ft_report(&hp, line, sizeof(line)), 0);
	assert_string_equal(line, "synced");
	/* Its msync returned: the file has the first half. */
	assert_int_equal(ft_file_has(path, 0, 32 * PG, 2), 0);
	assert_int_equal(ft_report(&hp, line, sizeof(line)), 0);
	assert_string_equal(line, "written");
	assert_true(WIFSIGNALED(ft_finish(&hp, SIGKILL)));
	/* Never synced, yet not lost: its exit writes it back; an msync
	   of ours covers whatever is still in flight. */
	p = ft_map_file(path, O_RDONLY, 64 * PG, PROT_READ, MAP_SHARED, 0);
	assert_ptr_not_equal(p, MAP_FAILED);
	assert_int_equal(upage_msync(p, 64 * PG, MS_SYNC), 0);
	assert_int_equal(ft_file_has(path, 0, 32 * PG, 2), 0);
	for (size_t i = 32 * PG; i < 64 * PG; i++)
		assert_int_equal(p[i], ft_pat(i, 3));
	assert_int_equal(ft_file_has(path, 32 * PG, 32 * PG, 3), 0);
	assert_int_equal(upage_munmap(p, 64 * PG), 0);
	unlink(path);
}

static void test_daemon_sigterm_writes_back(void **state)
{
	char path[128], n[16] = "64", line[64];
	struct harness h2;
	struct ft_helper hp;

	path_of(path, "term");
	assert_int_equal(ft_make_file(path, 64 * PG, 1), 0);
	assert_int_equal(harness_start(&h2), 0);
	{
		char *argv[] = { "test", "helper", "writer", h2.sock, path, n,
				 NULL };

		assert_int_equal(ft_spawn(&hp, argv), 0);
	}
	assert_int_equal(ft_report(&hp, line, sizeof(line)), 0);
	assert_string_equal(line, "synced");
	assert_int_equal(ft_report(&hp, line, sizeof(line)), 0);
	assert_string_equal(line, "written");
	/* Dirty and never synced: the daemon writes it before it exits. */
	assert_int_equal(harness_stop(&h2), 0);
	assert_int_equal(ft_file_has(path, 0, 32 * PG, 2), 0);
	assert_int_equal(ft_file_has(path, 32 * PG, 32 * PG, 3), 0);
	assert_int_equal(ft_finish(&hp, 0), 0);
	harness_live = &h;
	unlink(path);
}

/* A daemon reading with O_DIRECT ($UPAGED_DIRECT_IO=1): the same bytes. */
static void test_direct_io_reads(void **state)
{
	char path[128], a[16] = "0", n[16] = "300", line[64];
	struct harness h2;
	struct ft_helper hp;
	unsigned long addr;
	int fd;

	path_of(path, "direct");
	/* Not in the kernel's cache: cached runs are spliced instead. */
	assert_int_equal(ft_make_file(path, 300 * PG, 1), 0);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(fdatasync(fd), 0);
	assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
	close(fd);
	setenv("UPAGED_DIRECT_IO", "1", 1);
	assert_int_equal(harness_start(&h2), 0);
	unsetenv("UPAGED_DIRECT_IO");
	{
		char *argv[] = { "test", "helper", "reader", h2.sock, path, a,
				 n, NULL };

		assert_int_equal(ft_spawn(&hp, argv), 0);
	}
	/* The reader checks every byte. */
	assert_int_equal(ft_report(&hp, line, sizeof(line)), 0);
	assert_int_equal(sscanf(line, "ok %lx", &addr), 1);
	assert_int_equal(ft_finish(&hp, 0), 0);
	assert_int_equal(harness_stop(&h2), 0);
	harness_live = &h;
	unlink(path);
}

/*
 * A backing read that fails gives the faulting client SIGBUS, never an
 * endless wait; other files, and the daemon, go on as before.
 */
static void test_read_error_sigbus(void **state)
{
	char bad[128], good[128], line[64];
	struct ft_helper hp;
	struct harness h2;

	path_of(bad, "bad");
	path_of(good, "good");
	assert_int_equal(ft_make_file(bad, 4 * PG, 1), 0);
	assert_int_equal(ft_make_file(good, 4 * PG, 1), 0);
	setenv("UPAGED_FAIL_READS_OF", bad, 1);
	assert_int_equal(harness_start(&h2), 0);
	unsetenv("UPAGED_FAIL_READS_OF");
	{
		char *argv[] = { "test", "helper", "poison", h2.sock, bad, good,
				 NULL };

		assert_int_equal(ft_spawn(&hp, argv), 0);
	}
	assert_int_equal(ft_report(&hp, line, sizeof(line)), 0);
	assert_string_equal(line, "sigbus ok");
	assert_int_equal(ft_finish(&hp, 0), 0);
	/* The daemon was not hurt: it stops cleanly. */
	assert_int_equal(harness_stop(&h2), 0);
	harness_live = &h;
	unlink(bad);
	unlink(good);
}

/* 1 GiB, every 8-byte word its own offset: mapped and read in full. */
static void test_one_gib_file(void **state)
{
	const uint64_t size = 1UL << 30, chunk = 1 << 20;
	uint64_t *buf = malloc(chunk), *p;
	char path[128];
	int fd;

	assert_non_null(buf);
	path_of(path, "gib");
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	for (uint64_t off = 0; off < size; off += chunk) {
		for (uint64_t i = 0; i < chunk / 8; i++)
			buf[i] = (off + i * 8) ^ 0x5a5a5a5a5a5a5a5aULL;
		assert_int_equal(pwrite(fd, buf, chunk, (off_t)off), (ssize_t)chunk);
	}
	free(buf);
	/* Not in the kernel's cache: read from the disk, with readahead
	   running ahead of the reader. */
	assert_int_equal(fdatasync(fd), 0);
	assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
	p = upage_mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	assert_ptr_not_equal(p, MAP_FAILED);
	for (uint64_t i = 0; i < size / 8; i++)
		if (p[i] != ((i * 8) ^ 0x5a5a5a5a5a5a5a5aULL))
			fail_msg("word at %#lx differs", (unsigned long)(i * 8));
	assert_int_equal(upage_munmap(p, size), 0);
	unlink(path);
}

struct huge_reader {
	const unsigned char *p;
	size_t len;
	bool backwards;
	size_t bad; /* first byte that differs + 1, or 0 */
};

static void *huge_read(void *arg)
{
	struct huge_reader *r = arg;

	for (size_t k = 0; k < r->len && !r->bad; k++) {
		size_t i = r->backwards ? r->len - 1 - k : k;

		if (r->p[i] != ft_pat(i, 6))
			r->bad = i + 1;
	}
	return NULL;
}

/*
 * The page cache in huge pages (the daemon's default without a budget): a
 * file of 5 MiB and a bit, read by two threads from both ends at once,
 * is whole and mapped 2M at a time; a private copy stays private; shared
 * writes reach the file exactly; PAGEOUT of part of a huge page keeps it,
 * of whole ones drops them, and the data reads back the same.
 */
static void test_huge_pages(void **state)
{
	const size_t size = (5UL << 20) + 3 * PG + 10;
	const size_t len = (size + PG - 1) & ~(PG - 1);
	static const size_t writes[] = { 0, 700 * PG + 5, 1280 * PG + 9,
					 size - 1 };
	struct upage_status_reply s0, s1;
	struct huge_reader r[2];
	unsigned char *p, *q, *want;
	pthread_t t[2];
	char path[128];
	int fs;

	path_of(path, "huge");
	p = map_new_file(path, size, 6, O_RDWR, len);
	for (int i = 0; i < 2; i++) {
		r[i] = (struct huge_reader){ .p = p, .len = size,
					     .backwards = i };
		assert_int_equal(pthread_create(&t[i], NULL, huge_read, &r[i]),
				 0);
	}
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		if (r[i].bad)
			fail_msg("byte %zu differs", r[i].bad - 1);
	}
	for (size_t i = size; i < len; i++)
		assert_int_equal(p[i], 0);
	/* Where a tmpfs of one's own can be made, the daemon made one. */
	fs = (int)syscall(SYS_fsopen, "tmpfs", 0);
	if (fs >= 0) {
		close(fs);
		assert_true(ft_smaps_kb(getpid(), (unsigned long)p,
					"ShmemPmdMapped") >= 2048);
	}

	/* A private mapping's write is its own. */
	q = ft_map_file(path, O_RDONLY, len, PROT_READ | PROT_WRITE,
			MAP_PRIVATE, 0);
	assert_ptr_not_equal(q, MAP_FAILED);
	q[600 * PG + 1] ^= 0xff;
	assert_int_equal(q[600 * PG + 1], ft_pat(600 * PG + 1, 6) ^ 0xff);
	assert_int_equal(p[600 * PG + 1], ft_pat(600 * PG + 1, 6));
	assert_int_equal(upage_munmap(q, len), 0);

	/* Shared writes, synced: the file has exactly them. */
	want = malloc(size);
	assert_non_null(want);
	for (size_t i = 0; i < size; i++)
		want[i] = ft_pat(i, 6);
	assert_int_equal(upage_mprotect(p, len, PROT_READ | PROT_WRITE), 0);
	assert_int_equal(ft_status_of(h.sock, &s0), 0);
	for (size_t k = 0; k < sizeof(writes) / sizeof(writes[0]); k++)
		p[writes[k]] = want[writes[k]] = (unsigned char)(0x40 + k);
	assert_int_equal(upage_msync(p, len, MS_SYNC), 0);
	assert_int_equal(ft_status_of(h.sock, &s1), 0);
	assert_int_equal(s1.writeback_bytes - s0.writeback_bytes,
			 sizeof(writes) / sizeof(writes[0]) * PG);
	{
		unsigned char *got = malloc(size);
		int fd = open(path, O_RDONLY | O_CLOEXEC);

		assert_non_null(got);
		assert_true(fd >= 0);
		assert_int_equal(pread(fd, got, size, 0), (ssize_t)size);
		close(fd);
		for (size_t i = 0; i < size; i++)
			if (got[i] != want[i])
				fail_msg("file byte %zu differs", i);
		free(got);
	}

	/* PAGEOUT: half a huge page stays, whole ones go; the same data. */
	assert_int_equal(ft_status_of(h.sock, &s0), 0);
	assert_int_equal(upage_madvise(p + 256 * PG, 256 * PG, MADV_PAGEOUT),
			 0);
	assert_int_equal(ft_status_of(h.sock, &s1), 0);
	assert_int_equal(s1.evicted_pages, s0.evicted_pages);
	assert_int_equal(upage_madvise(p, len, MADV_PAGEOUT), 0);
	assert_int_equal(ft_status_of(h.sock, &s1), 0);
	assert_true(s1.evicted_pages - s0.evicted_pages >= 1024);
	for (size_t i = 0; i < size; i++)
		if (p[i] != want[i])
			fail_msg("byte %zu differs after PAGEOUT", i);
	free(want);
	assert_int_equal(upage_munmap(p, len), 0);
	unlink(path);
}

/*
 * MADV_RANDOM through mappings that are private to the kernel (a shared
 * one of a read-only fd, and a private one) of a huge page cache: each
 * fault reads its page alone, not the 2 MiB around it, and the pages
 * beside it still read as the file. A private write stays private; a
 * shared mapping of a writable fd then finds the pages in the cache
 * (nothing read again).
 */
static void test_random_private_huge(void **state)
{
	static const unsigned long pages[] = { 1, 515, 1030, 1500, 2047 };
	const size_t n = sizeof(pages) / sizeof(pages[0]);
	const size_t len = 2048 * PG;
	struct upage_status_reply s0, s1;
	unsigned char *ro, *priv, *sh;
	char path[128];

	path_of(path, "random-private");
	assert_int_equal(ft_make_file(path, len, 8), 0);
	ro = ft_map_file(path, O_RDONLY, len, PROT_READ, MAP_SHARED, 0);
	priv = ft_map_file(path, O_RDONLY, len, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE, 0);
	assert_ptr_not_equal(ro, MAP_FAILED);
	assert_ptr_not_equal(priv, MAP_FAILED);
	assert_int_equal(upage_madvise(ro, len, MADV_RANDOM), 0);
	assert_int_equal(upage_madvise(priv, len, MADV_RANDOM), 0);
	assert_int_equal(ft_status_of(h.sock, &s0), 0);
	for (size_t k = 0; k < n; k++) {
		unsigned long off = pages[k] * PG;

		/* The private mapping writes first: a write fault. */
		priv[off + 3] = (unsigned char)~ft_pat(off + 3, 8);
		for (unsigned long i = off; i < off + PG; i++)
			if (ro[i] != ft_pat(i, 8))
				fail_msg("byte %#lx differs", i);
	}
	assert_int_equal(ft_status_of(h.sock, &s1), 0);
	assert_int_equal(s1.read_bytes - s0.read_bytes, n * PG);
	for (size_t k = 0; k < n; k++) {
		unsigned long off = pages[k] * PG;

		assert_int_equal(priv[off + 3],
				 (unsigned char)~ft_pat(off + 3, 8));
		assert_int_equal(priv[off + 4], ft_pat(off + 4, 8));
		/* The neighbours, faulted the same way. */
		if (pages[k] > 0)
			assert_int_equal(ro[off - 1], ft_pat(off - 1, 8));
		if (pages[k] + 1 < len / PG)
			assert_int_equal(ro[off + PG], ft_pat(off + PG, 8));
	}
	sh = ft_map_file(path, O_RDWR, len, PROT_READ, MAP_SHARED, 0);
	assert_ptr_not_equal(sh, MAP_FAILED);
	assert_int_equal(upage_madvise(sh, len, MADV_RANDOM), 0);
	assert_int_equal(ft_status_of(h.sock, &s0), 0);
	for (size_t k = 0; k < n; k++)
		assert_int_equal(sh[pages[k] * PG + 3],
				 ft_pat(pages[k] * PG + 3, 8));
	assert_int_equal(ft_status_of(h.sock, &s1), 0);
	assert_int_equal(s1.read_bytes, s0.read_bytes);
	assert_int_equal(upage_munmap(sh, len), 0);
	assert_int_equal(upage_munmap(priv, len), 0);
	assert_int_equal(upage_munmap(ro, len), 0);
	unlink(path);
}

/* Every byte of [0, to) of p is pattern 10's; 0 or the first bad + 1. */
static size_t marker_check(const unsigned char *p, size_t to)
{
	for (size_t i = 0; i < to; i++)
		if (p[i] != ft_pat(i, 10))
			return i + 1;
	return 0;
}

/* Maps path (len bytes), checks [0, to) and unmaps: as marker_check. */
static size_t marker_read(const char *path, size_t len, size_t to)
{
	unsigned char *p = ft_map_file(path, O_RDONLY, len, PROT_READ,
				       MAP_SHARED, 0);
	size_t bad;

	assert_ptr_not_equal(p, MAP_FAILED);
	bad = marker_check(p, to);
	assert_int_equal(upage_munmap(p, len), 0);
	return bad;
}

/*
 * A sequential reader of a huge page cache is read ahead of all the way:
 * after its first faults, every fault finds its page read or being read
 * (the marker extent of each window starts the next). Without the marker
 * it would meet a page nobody reads at the end of every window and wait
 * there for the disk. A reader that unmaps while a marker is held, and
 * maps again, reads the file whole; a file truncated while they are held
 * ends where the kernel's would.
 */
static void test_huge_readahead_marker(void **state)
{
	const size_t len = 96UL << 20;
	struct upage_status_reply s0, s1;
	unsigned char *p, v;
	char path[128];
	size_t bad;

	path_of(path, "marker");
	p = map_new_file(path, len, 10, O_RDONLY, len);
	assert_int_equal(ft_status_of(h.sock, &s0), 0);
	bad = marker_check(p, len);
	assert_int_equal(ft_status_of(h.sock, &s1), 0);
	if (bad)
		fail_msg("byte %zu differs", bad - 1);
	/* The first fault, and the one past what it read around. */
	if (s1.faults_file - s0.faults_file > 3)
		fail_msg("%" PRIu64 " faults found their page unread",
			 s1.faults_file - s0.faults_file);
	assert_true(s1.faults_minor > s0.faults_minor);
	assert_int_equal(upage_munmap(p, len), 0);

	/* Away in the middle of a window, then back. */
	bad = marker_read(path, len, len / 3);
	if (bad)
		fail_msg("byte %zu differs", bad - 1);
	bad = marker_read(path, len, len);
	if (bad)
		fail_msg("byte %zu differs after a remap", bad - 1);

	/*
	 * Truncated while windows and their markers are being read ahead.
	 * The daemon sees it through inotify, or at the latest at the next
	 * fault (the last page: read by nothing yet); from then on what is
	 * left reads as the file, the rest of the new last page as zeroes,
	 * and what went raises SIGBUS.
	 */
	p = ft_map_file(path, O_RDONLY, len, PROT_READ, MAP_SHARED, 0);
	assert_ptr_not_equal(p, MAP_FAILED);
	bad = marker_check(p, len / 4);
	if (bad)
		fail_msg("byte %zu differs", bad - 1);
	assert_int_equal(truncate(path, (off_t)(len / 2 + 5)), 0);
	assert_int_equal(ft_touch(p + len - PG, &v), SIGBUS);
	bad = marker_check(p, len / 2 + 5);
	if (bad)
		fail_msg("byte %zu differs after the truncation", bad - 1);
	for (size_t i = len / 2 + 5; i < len / 2 + PG; i++)
		assert_int_equal(p[i], 0);
	assert_int_equal(ft_touch(p + len / 2 + PG, &v), SIGBUS);
	assert_int_equal(ft_touch(p + 3 * (len / 4), &v), SIGBUS);
	assert_int_equal(upage_munmap(p, len), 0);
	unlink(path);
}

/*
 * --cache-dir: the huge page cache on a tmpfs given to the daemon (as the
 * service unit does), mounted here; a directory that is not a tmpfs is
 * refused with a warning, and the daemon serves from memfds. Either way
 * another client reads every byte; on the tmpfs, 2M at a time.
 */
static void test_cache_dir(void **state)
{
	char path[128], mnt[128], line[64], n[16];
	const char *extra[3] = { "--cache-dir", mnt, NULL };
	struct ft_helper hp;
	struct harness h2;
	unsigned long addr;

	path_of(path, "cachedir-file");
	path_of(mnt, "cachedir");
	snprintf(n, sizeof(n), "%lu", 1024UL);
	assert_int_equal(ft_make_file(path, 1024 * PG, 1), 0);
	assert_int_equal(mkdir(mnt, 0700), 0);
	for (int pass = 0; pass < 2; pass++) {
		bool on_tmpfs = false;

		/* The first pass on a tmpfs of huge pages where the test may
		   mount one, the second on a plain directory. */
		if (pass == 0)
			on_tmpfs = mount("upaged-test", mnt, "tmpfs", 0,
					 "huge=within_size,mode=0700") == 0;
		assert_int_equal(harness_start_args(&h2, extra), 0);
		{
			char *argv[] = { "test", "helper", "reader", h2.sock,
					 path, "0", n, NULL };

			assert_int_equal(ft_spawn(&hp, argv), 0);
		}
		assert_int_equal(ft_report(&hp, line, sizeof(line)), 0);
		assert_int_equal(sscanf(line, "ok %lx", &addr), 1);
		if (on_tmpfs)
			assert_true(ft_smaps_kb(hp.pid, addr,
						"ShmemPmdMapped") >= 2048);
		else
			assert_int_equal(ft_smaps_kb(hp.pid, addr,
						     "ShmemPmdMapped"), 0);
		assert_int_equal(ft_finish(&hp, 0), 0);
		assert_int_equal(harness_stop(&h2), 0);
		harness_live = &h;
		if (on_tmpfs)
			assert_int_equal(umount(mnt), 0);
	}
	rmdir(mnt);
	unlink(path);
}

/*
 * Clients read a file not in any cache, each in an order of its own (one
 * in order, through the readahead): faults land everywhere in extents
 * being read. A client must never see a page of a huge page before its
 * data (the kernel shows the rest of a large folio as zeroes as soon as a
 * part of it is written). Twice: the first time alone in order.
 */
static void test_scattered_readers(void **state)
{
	const unsigned long npages = 64 * 512 + 77;
	char path[128], n[16], seed[4][16], line[64];
	struct ft_helper hp[4];
	int fd;

	path_of(path, "scatter");
	assert_int_equal(ft_make_file(path, npages * PG, 1), 0);
	snprintf(n, sizeof(n), "%lu", npages);
	for (int round = 0, k = 1; round < 2; round++, k = 4) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		assert_true(fd >= 0);
		assert_int_equal(fdatasync(fd), 0);
		assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED),
				 0);
		close(fd);
		for (int i = 0; i < k; i++) {
			char *argv[] = { "test", "helper", "scatter", h.sock,
					 path, n, seed[i], NULL };

			snprintf(seed[i], sizeof(seed[i]), "%d",
				 i ? 100 + i : 0);
			assert_int_equal(ft_spawn(&hp[i], argv), 0);
		}
		for (int i = 0; i < k; i++) {
			assert_int_equal(ft_report(&hp[i], line, sizeof(line)),
					 0);
			assert_string_equal(line, "ok");
		}
		/* All gone: the next round starts from an empty cache. */
		for (int i = 0; i < k; i++)
			assert_int_equal(ft_finish(&hp[i], 0), 0);
	}
	unlink(path);
}

/* Every byte of n pages at p is page first.. of the file (pattern 1). */
static void check_file_pages(const unsigned char *p, unsigned long first,
			     unsigned long n)
{
	for (unsigned long i = 0; i < n * PG; i++)
		if (p[i] != ft_pat(first * PG + i, 1))
			fail_msg("byte %lu (file page %lu) differs", i,
				 first + i / PG);
}

/*
 * mremap of file mappings that grow, as with the kernel: in place, and
 * moved (MAYMOVE|FIXED); shared writes made before and after reach the
 * file; a private copy travels with its mapping; past the end of the file
 * the grown part raises SIGBUS. The kernel's maps agree on the offsets.
 */
static void test_mremap_grow_file(void **state)
{
	unsigned char *p, *q, *r, v;
	unsigned long off;
	char path[128], perms[5];
	int fd;

	path_of(path, "grow");
	assert_int_equal(ft_make_file(path, 64 * PG, 1), 0);
	/* Room above: 48 pages placed, the top 32 given back. */
	p = ft_map_file(path, O_RDWR, 48 * PG, PROT_READ | PROT_WRITE,
			MAP_SHARED, 8 * PG);
	assert_ptr_not_equal(p, MAP_FAILED);
	assert_int_equal(upage_munmap(p + 16 * PG, 32 * PG), 0);
	check_file_pages(p, 8, 16);
	p[5] = 'A';
	q = upage_mremap(p, 16 * PG, 32 * PG, 0);
	assert_ptr_equal(q, p);
	assert_int_equal(ft_maps_perms(getpid(), (unsigned long)p + 20 * PG,
				       perms, &off), 0);
	assert_string_equal(perms, "rw-s");
	assert_int_equal(off, 8 * PG); /* one VMA again: its start's */
	assert_int_equal(p[5], 'A');
	check_file_pages(p + PG, 9, 31);
	p[20 * PG + 3] = 'B';
	/* Moved: to a free range chosen here. */
	r = upage_mmap(NULL, 64 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	assert_ptr_not_equal(r, MAP_FAILED);
	assert_int_equal(upage_munmap(r, 64 * PG), 0);
	q = upage_mremap(p, 32 * PG, 56 * PG, MREMAP_MAYMOVE | MREMAP_FIXED,
			 r);
	assert_ptr_equal(q, r);
	assert_int_equal(q[5], 'A');
	assert_int_equal(q[20 * PG + 3], 'B');
	check_file_pages(q + 32 * PG, 40, 24);
	q[50 * PG] = 'C';
	assert_int_equal(upage_msync(q, 56 * PG, MS_SYNC), 0);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &v, 1, 8 * PG + 5), 1);
	assert_int_equal(v, 'A');
	assert_int_equal(pread(fd, &v, 1, 28 * PG + 3), 1);
	assert_int_equal(v, 'B');
	assert_int_equal(pread(fd, &v, 1, 58 * PG), 1);
	assert_int_equal(v, 'C');
	close(fd);
	/* Past the end of the file: the kernel's SIGBUS. */
	q = upage_mremap(r, 56 * PG, 64 * PG, MREMAP_MAYMOVE);
	assert_ptr_not_equal(q, MAP_FAILED);
	assert_int_equal(ft_touch(q + 55 * PG, &v), 0);
	assert_int_equal(ft_touch(q + 56 * PG, &v), SIGBUS);
	assert_int_equal(upage_munmap(q, 64 * PG), 0);

	/* Private: the copy moves with the mapping, the tail is the file's. */
	p = ft_map_file(path, O_RDONLY, 8 * PG, PROT_READ | PROT_WRITE,
			MAP_PRIVATE, 0);
	assert_ptr_not_equal(p, MAP_FAILED);
	p[PG] = 'P';
	q = upage_mremap(p, 8 * PG, 24 * PG, MREMAP_MAYMOVE);
	assert_ptr_not_equal(q, MAP_FAILED);
	assert_int_equal(q[PG], 'P');
	assert_int_equal(ft_maps_perms(getpid(), (unsigned long)q + 10 * PG,
				       perms, &off), 0);
	assert_string_equal(perms, "rw-p");
	assert_int_equal(off, 0);
	check_file_pages(q + 9 * PG, 9, 15);
	assert_int_equal(q[8 * PG + 5], 'A');
	assert_int_equal(upage_munmap(q, 24 * PG), 0);
	unlink(path);
}

/*
 * Anonymous shared memory: zeroes first, shared with a fork child both
 * ways, "rw-s" in the kernel's maps, protections as the kernel's; grown
 * by mremap, the part past its first size raises SIGBUS, as the kernel's.
 */
static void test_anon_shared(void **state)
{
	unsigned char *p, *q, v;
	unsigned long off;
	char perms[5];
	pid_t pid;
	int st;

	p = upage_mmap(NULL, 16 * PG, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_ptr_not_equal(p, MAP_FAILED);
	for (unsigned long i = 0; i < 16 * PG; i++)
		assert_int_equal(p[i], 0);
	for (unsigned long i = 0; i < 16 * PG; i++)
		p[i] = ft_pat(i, 9);
	assert_int_equal(ft_maps_perms(getpid(), (unsigned long)p, perms,
				       &off), 0);
	assert_string_equal(perms, "rw-s");
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		for (unsigned long i = 0; i < 16 * PG; i++)
			if (p[i] != ft_pat(i, 9))
				_exit(1);
		p[3 * PG + 1] = 'k';
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(p[3 * PG + 1], 'k');
	assert_int_equal(upage_mprotect(p, 16 * PG, PROT_READ), 0);
	assert_int_equal(ft_poke(p + PG, 1), SIGSEGV);
	assert_int_equal(upage_mprotect(p, 16 * PG, PROT_READ | PROT_WRITE),
			 0);
	p[PG] = 'w';
	q = upage_mremap(p, 16 * PG, 24 * PG, MREMAP_MAYMOVE);
	assert_ptr_not_equal(q, MAP_FAILED);
	assert_int_equal(q[PG], 'w');
	assert_int_equal(q[3 * PG + 1], 'k');
	assert_int_equal(ft_touch(q + 15 * PG, &v), 0);
	assert_int_equal(ft_touch(q + 16 * PG, &v), SIGBUS);
	assert_int_equal(upage_munmap(q, 24 * PG), 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shared_read_matches_file),
		cmocka_unit_test(test_private_cow_isolation),
		cmocka_unit_test(test_shared_write_msync_and_unmap),
		cmocka_unit_test(test_eof_tail_and_sigbus),
		cmocka_unit_test(test_truncate_while_mapped),
		cmocka_unit_test(test_protections),
		cmocka_unit_test(test_two_readers_one_copy),
		cmocka_unit_test(test_eight_readers_one_copy),
		cmocka_unit_test(test_writer_sync_then_sigkill),
		cmocka_unit_test(test_daemon_sigterm_writes_back),
		cmocka_unit_test(test_direct_io_reads),
		cmocka_unit_test(test_read_error_sigbus),
		cmocka_unit_test(test_one_gib_file),
		cmocka_unit_test(test_huge_pages),
		cmocka_unit_test(test_random_private_huge),
		cmocka_unit_test(test_huge_readahead_marker),
		cmocka_unit_test(test_truncate_seen_without_fault),
		cmocka_unit_test(test_cache_dir),
		cmocka_unit_test(test_scattered_readers),
		cmocka_unit_test(test_mremap_grow_file),
		cmocka_unit_test(test_anon_shared),
	};

	if (argc >= 2 && !strcmp(argv[1], "helper"))
		return helper_main(argc, argv);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
