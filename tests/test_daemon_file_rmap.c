/*
 * test_daemon_file_rmap.c - the reverse-map query (RMAP_QUERY) over the
 * protocol: for a file and a page range, every (pid, address range,
 * offset, protection) mapping it, after map, mprotect, unmap and fork, in
 * several clients; pagination; bad requests answered and the connection
 * kept.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>

#include <cmocka.h>

#include <upage/upage.h>

#include "upaged_harness.h"
#include "upaged_filetest.h"

#define PG FT_PG

static struct harness h;
static char dir[64], path[128];

static int group_setup(void **state)
{
	strcpy(dir, "/tmp/upaged-rmap-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/file", dir);
	if (ft_make_file(path, 256 * PG, 1) < 0)
		return -1;
	return harness_group_start(&h, 4UL << 30);
}

static int group_teardown(void **state)
{
	ft_rmdir(dir);
	return harness_group_stop(&h);
}

static int query(uint64_t first, uint64_t n, struct upage_rmap_entry *e,
		 size_t max, size_t *total)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), r;

	if (fd < 0)
		return -errno;
	r = upage_rmap_query(fd, first, n, e, max, total);
	close(fd);
	return r;
}

/* The entry of pid whose start is start, or NULL. */
static const struct upage_rmap_entry *find(const struct upage_rmap_entry *e,
					   int n, pid_t pid,
					   unsigned long start)
{
	for (int i = 0; i < n; i++)
		if (e[i].pid == pid && e[i].start == start)
			return &e[i];
	return NULL;
}

static void check(const struct upage_rmap_entry *e, unsigned long start,
		  unsigned long end, unsigned long pgoff, int prot,
		  bool shared)
{
	assert_non_null(e);
	assert_int_equal(e->start, start);
	assert_int_equal(e->end, end);
	assert_int_equal(e->pgoff, pgoff);
	assert_int_equal(e->prot, prot);
	assert_int_equal(!!(e->vm_flags & 0x8 /* VM_SHARED */), shared);
}

static unsigned char *map(size_t pages, int prot, int flags, size_t pgoff)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	void *p = upage_mmap(NULL, pages * PG, prot, flags, fd, pgoff * PG);

	close(fd);
	return p;
}

static void test_map_protect_unmap(void **state)
{
	struct upage_rmap_entry e[16];
	unsigned long a, b;
	pid_t me = getpid();
	size_t total;
	unsigned char *pa, *pb;

	pa = map(16, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
	pb = map(16, PROT_READ, MAP_PRIVATE, 8);
	assert_ptr_not_equal(pa, MAP_FAILED);
	assert_ptr_not_equal(pb, MAP_FAILED);
	a = (unsigned long)pa;
	b = (unsigned long)pb;
	assert_int_equal(query(0, 32, e, 16, &total), 2);
	assert_int_equal(total, 2);
	check(find(e, 2, me, a), a, a + 16 * PG, 0, PROT_READ | PROT_WRITE,
	      true);
	check(find(e, 2, me, b), b, b + 16 * PG, 8, PROT_READ, false);
	/* Clipped to the asked range. */
	assert_int_equal(query(20, 2, e, 16, &total), 1);
	check(&e[0], b + 12 * PG, b + 14 * PG, 20, PROT_READ, false);
	/* Nothing maps pages 30..39; 0 pages means to the end. */
	assert_int_equal(query(30, 10, e, 16, &total), 0);
	assert_int_equal(total, 0);
	assert_int_equal(query(0, 0, e, 16, &total), 2);

	/* mprotect splits: three parts of a. */
	assert_int_equal(upage_mprotect(pa + 4 * PG, 4 * PG, PROT_READ), 0);
	assert_int_equal(query(0, 16, e, 16, &total), 4);
	check(find(e, 4, me, a), a, a + 4 * PG, 0, PROT_READ | PROT_WRITE, true);
	check(find(e, 4, me, a + 4 * PG), a + 4 * PG, a + 8 * PG, 4, PROT_READ,
	      true);
	check(find(e, 4, me, a + 8 * PG), a + 8 * PG, a + 16 * PG, 8,
	      PROT_READ | PROT_WRITE, true);
	/* Back as it was: merged again. */
	assert_int_equal(upage_mprotect(pa + 4 * PG, 4 * PG,
					PROT_READ | PROT_WRITE), 0);
	assert_int_equal(query(0, 16, e, 16, &total), 2);

	/* Unmap the middle of b, then all of it. */
	assert_int_equal(upage_munmap(pb + 4 * PG, 4 * PG), 0);
	assert_int_equal(query(8, 16, e, 16, &total), 3);
	check(find(e, 3, me, b), b, b + 4 * PG, 8, PROT_READ, false);
	check(find(e, 3, me, b + 8 * PG), b + 8 * PG, b + 16 * PG, 16,
	      PROT_READ, false);
	assert_int_equal(upage_munmap(pb, 16 * PG), 0);
	assert_int_equal(query(0, 256, e, 16, &total), 1);
	check(&e[0], a, a + 16 * PG, 0, PROT_READ | PROT_WRITE, true);
	assert_int_equal(upage_munmap(pa, 16 * PG), 0);
	assert_int_equal(query(0, 0, e, 16, &total), 0);
}

/* Queries until pid has no entry left (its exit is read asynchronously). */
static bool gone(pid_t pid)
{
	struct upage_rmap_entry e[16];
	size_t total;

	for (int tries = 0; tries < 100000; tries++) {
		int n = query(0, 0, e, 16, &total);
		bool found = false;

		for (int i = 0; i < n; i++)
			found |= e[i].pid == pid;
		if (n >= 0 && !found)
			return true;
		sched_yield();
	}
	return false;
}

static void test_fork_and_other_clients(void **state)
{
	struct upage_rmap_entry e[16];
	struct upage_stats_reply s;
	struct ft_helper hp;
	unsigned long a, r;
	int to[2], from[2], status;
	pid_t me = getpid(), child;
	size_t total;
	char line[64], c;
	unsigned char *pa;

	pa = map(8, PROT_READ | PROT_WRITE, MAP_SHARED, 100);
	assert_ptr_not_equal(pa, MAP_FAILED);
	a = (unsigned long)pa;
	assert_int_equal(pipe2(to, O_CLOEXEC), 0);
	assert_int_equal(pipe2(from, O_CLOEXEC), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		close(to[1]);
		close(from[0]);
		/* The first call binds our copy of the mm to our pid. */
		c = upage_stats(&s) == 0 && pa[0] == ft_pat(100 * PG, 1) ?
		    'y' : 'n';
		if (write(from[1], &c, 1) != 1 || read(to[0], &c, 1) < 0)
			_exit(1);
		_exit(0);
	}
	close(to[0]);
	close(from[1]);
	assert_int_equal(read(from[0], &c, 1), 1);
	assert_int_equal(c, 'y');
	assert_int_equal(query(100, 8, e, 16, &total), 2);
	check(find(e, 2, me, a), a, a + 8 * PG, 100, PROT_READ | PROT_WRITE,
	      true);
	check(find(e, 2, child, a), a, a + 8 * PG, 100,
	      PROT_READ | PROT_WRITE, true);
	{
		char s1[16] = "102", s2[16] = "4";
		char *argv[] = { "test", "helper", h.sock, path, s1, s2, NULL };

		assert_int_equal(ft_spawn(&hp, argv), 0);
	}
	assert_int_equal(ft_report(&hp, line, sizeof(line)), 0);
	assert_int_equal(sscanf(line, "ok %lx", &r), 1);
	assert_int_equal(query(100, 8, e, 16, &total), 3);
	check(find(e, 3, hp.pid, r), r, r + 4 * PG, 102, PROT_READ, false);
	/* Only the asked pages: page 101 is not the other client's. */
	assert_int_equal(query(101, 1, e, 16, &total), 2);
	assert_null(find(e, 2, hp.pid, r));

	close(to[1]);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_true(gone(child));
	assert_int_equal(ft_finish(&hp, 0), 0);
	assert_true(gone(hp.pid));
	assert_int_equal(query(0, 0, e, 16, &total), 1);
	check(&e[0], a, a + 8 * PG, 100, PROT_READ | PROT_WRITE, true);
	close(from[0]);
	assert_int_equal(upage_munmap(pa, 8 * PG), 0);
}

/* More entries than one reply holds: the library pages through them. */
static void test_pagination(void **state)
{
	enum { N = 150 };
	struct upage_rmap_entry *e = calloc(N + 10, sizeof(*e));
	unsigned char *p[N];
	size_t total;
	bool seen[N] = { false };

	assert_non_null(e);
	/* Single pages, not mergeable: page i at falling addresses. */
	for (int i = 0; i < N; i++) {
		p[i] = map(1, PROT_READ, MAP_PRIVATE, i);
		assert_ptr_not_equal(p[i], MAP_FAILED);
	}
	assert_true(UPAGE_RMAP_MAX < N);
	assert_int_equal(query(0, 0, e, N + 10, &total), N);
	assert_int_equal(total, N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(e[i].end - e[i].start, PG);
		assert_true(e[i].pgoff < N);
		assert_int_equal(e[i].start, (unsigned long)p[e[i].pgoff]);
		assert_false(seen[e[i].pgoff]);
		seen[e[i].pgoff] = true;
	}
	/* Room for fewer: filled up to max, total still says all. */
	assert_int_equal(query(0, 0, e, 7, &total), 7);
	assert_int_equal(total, N);
	for (int i = 0; i < N; i++)
		assert_int_equal(upage_munmap(p[i], PG), 0);
	free(e);
}

static void test_bad_requests(void **state)
{
	struct upage_rmap_entry e[4];
	size_t total;
	int pfd[2], fd;

	assert_int_equal(upage_rmap_query(-1, 0, 0, e, 4, &total), -EBADF);
	assert_int_equal(upage_rmap_query(9999, 0, 0, e, 4, &total), -EBADF);
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	assert_int_equal(upage_rmap_query(pfd[0], 0, 0, e, 4, &total), -ENODEV);
	close(pfd[0]);
	close(pfd[1]);
	/* A range that wraps. */
	assert_int_equal(query(~0ULL - 2, 10, e, 4, &total), -EINVAL);
	/* A directory; a file the daemon never saw. */
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_int_equal(upage_rmap_query(fd, 0, 0, e, 4, &total), -ENODEV);
	close(fd);
	fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	assert_int_equal(upage_rmap_query(fd, 0, 0, e, 4, &total), 0);
	assert_int_equal(total, 0);
	close(fd);
	/* Still connected. */
	assert_int_equal(query(0, 0, e, 4, &total), 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_map_protect_unmap),
		cmocka_unit_test(test_fork_and_other_clients),
		cmocka_unit_test(test_pagination),
		cmocka_unit_test(test_bad_requests),
	};

	if (argc >= 6 && !strcmp(argv[1], "helper"))
		return ft_helper_reader(argv + 2);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
