/*
 * upaged_filetest.h - helpers for the file-backed paging tests: patterned
 * files, SIGBUS probes, helper processes that are clients of their own
 * (the test program re-executed with a role), /proc/PID/smaps figures.
 *
 * Contract: every helper returns -errno or a negative line number on
 * failure and never exits the test program; helper processes report on a
 * pipe (their stdout) and wait for their stdin to close, so the test
 * decides when they go — nothing waits by sleeping.
 */
#ifndef UPAGED_FILETEST_H
#define UPAGED_FILETEST_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <linux/magic.h>
#include <unistd.h>

#define FT_PG 4096UL

/* Byte i of the pattern seed. */
static inline unsigned char ft_pat(uint64_t i, unsigned seed)
{
	return (unsigned char)(i * 131 + seed * 17 + (i >> 12) * 7 + 1);
}

/* A file of size bytes of pattern seed at path (created or replaced). */
static inline int ft_make_file(const char *path, uint64_t size, unsigned seed)
{
	unsigned char buf[65536];
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0)
		return -errno;
	for (uint64_t off = 0; off < size; off += sizeof(buf)) {
		size_t n = size - off < sizeof(buf) ? size - off : sizeof(buf);

		for (size_t i = 0; i < n; i++)
			buf[i] = ft_pat(off + i, seed);
		if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n) {
			close(fd);
			return -EIO;
		}
	}
	close(fd);
	return 0;
}

/* Writes size bytes to fd, each 8-byte word its own offset; 0 or -errno. */
static inline int ft_fill_offsets(int fd, uint64_t size)
{
	const size_t chunk = 1 << 20;
	uint64_t *buf = malloc(chunk);

	if (!buf)
		return -ENOMEM;
	for (uint64_t off = 0; off < size; off += chunk) {
		size_t n = size - off < chunk ? size - off : chunk;

		for (size_t i = 0; i < n / 8; i++)
			buf[i] = off + i * 8;
		if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n) {
			free(buf);
			return -EIO;
		}
	}
	free(buf);
	return fsync(fd) < 0 ? -errno : 0;
}

/*
 * A benchmark's file, named from name in $UPAGE_BENCH_DIR (default
 * /var/tmp: a disk, not tmpfs) into path, filled by ft_fill_offsets().
 * Returns its fd (read-write), or -1 with errno set.
 */
static inline int ft_bench_file(char *path, size_t pathlen, const char *name,
				uint64_t size)
{
	const char *d = getenv("UPAGE_BENCH_DIR");
	int fd, r;

	snprintf(path, pathlen, "%s/%s-XXXXXX", d && *d ? d : "/var/tmp",
		 name);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return -1;
	r = ft_fill_offsets(fd, size);
	if (r < 0) {
		close(fd);
		errno = -r;
		return -1;
	}
	return fd;
}

/* perm[0..n) a random order of 0..n-1, the same for the same seed. */
static inline void ft_shuffle(uint32_t *perm, uint32_t n, uint64_t seed)
{
	for (uint32_t i = 0; i < n; i++)
		perm[i] = i;
	for (uint32_t i = n - 1; i > 0; i--) {
		uint32_t j, x;

		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		j = (uint32_t)(seed % (i + 1));
		x = perm[i];
		perm[i] = perm[j];
		perm[j] = x;
	}
}

/* 0 if [off, off + len) of the file at path is pattern seed, else -1. */
static inline int ft_file_has(const char *path, uint64_t off, size_t len,
			      unsigned seed)
{
	unsigned char buf[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -1;
	for (size_t done = 0; done < len && !r; done += sizeof(buf)) {
		size_t n = len - done < sizeof(buf) ? len - done : sizeof(buf);

		if (pread(fd, buf, n, (off_t)(off + done)) != (ssize_t)n)
			r = -1;
		for (size_t i = 0; i < n && !r; i++)
			if (buf[i] != ft_pat(off + done + i, seed))
				r = -1;
	}
	close(fd);
	return r;
}

static sigjmp_buf ft_jb;

static void ft_on_bus(int sig)
{
	siglongjmp(ft_jb, sig);
}

/* Reads *p: 0 if it worked (*out gets the byte), or the signal it raised. */
static inline int ft_touch(const volatile unsigned char *p, unsigned char *out)
{
	struct sigaction sa, obus, osegv;
	int sig;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = ft_on_bus;
	sigaction(SIGBUS, &sa, &obus);
	sigaction(SIGSEGV, &sa, &osegv);
	sig = sigsetjmp(ft_jb, 1);
	if (sig == 0) {
		unsigned char v = *p;

		if (out)
			*out = v;
	}
	sigaction(SIGBUS, &obus, NULL);
	sigaction(SIGSEGV, &osegv, NULL);
	return sig;
}

/* Writes *p: 0, or the signal it raised. */
static inline int ft_poke(volatile unsigned char *p, unsigned char v)
{
	struct sigaction sa, obus, osegv;
	int sig;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = ft_on_bus;
	sigaction(SIGBUS, &sa, &obus);
	sigaction(SIGSEGV, &sa, &osegv);
	sig = sigsetjmp(ft_jb, 1);
	if (sig == 0)
		*p = v;
	sigaction(SIGBUS, &obus, NULL);
	sigaction(SIGSEGV, &osegv, NULL);
	return sig;
}

/* Removes dir and the files in it (what a failed test left behind). */
static inline void ft_rmdir(const char *dir)
{
	char path[512];
	struct dirent *e;
	DIR *d = opendir(dir);

	while (d && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			unlink(path);
		}
	if (d)
		closedir(d);
	rmdir(dir);
}

/* A helper process: the test program run again with argv. */
struct ft_helper {
	pid_t pid;
	FILE *out;   /* its reports */
	int in;      /* closing this tells it to go */
};

static inline int ft_spawn(struct ft_helper *hp, char *const argv[])
{
	int to[2], from[2];

	hp->pid = -1;
	hp->in = -1;
	hp->out = NULL;
	if (pipe2(to, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(from, O_CLOEXEC) < 0) {
		close(to[0]);
		close(to[1]);
		return -errno;
	}
	hp->pid = fork();
	if (hp->pid < 0)
		return -errno;
	if (hp->pid == 0) {
		dup2(to[0], 0);
		dup2(from[1], 1);
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	close(to[0]);
	close(from[1]);
	hp->in = to[1];
	hp->out = fdopen(from[0], "r");
	return hp->out ? 0 : -ENOMEM;
}

/* Its next report line (without newline) into buf; 0 or -1 at EOF. */
static inline int ft_report(struct ft_helper *hp, char *buf, size_t size)
{
	if (!fgets(buf, (int)size, hp->out))
		return -1;
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

/* Lets it go (or kills it with sig) and returns its exit status. */
static inline int ft_finish(struct ft_helper *hp, int sig)
{
	int status = -1;

	if (sig)
		kill(hp->pid, sig);
	close(hp->in);
	while (waitpid(hp->pid, &status, 0) < 0 && errno == EINTR)
		;
	fclose(hp->out);
	return status;
}

/* kB of the smaps field (e.g. "Rss", "ShmemPmdMapped") of pid's VMA that
   starts at addr, or -1. */
static inline long ft_smaps_kb(pid_t pid, unsigned long addr,
			       const char *field)
{
	char path[64], line[256], want[64];
	long kb = -1, v;
	bool in = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	snprintf(want, sizeof(want), "%s: %%ld kB", field);
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;

		/* A VMA's first line; field lines never parse as a range. */
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2)
			in = s == addr;
		else if (in && sscanf(line, want, &v) == 1)
			kb = v;
	}
	fclose(f);
	return kb;
}

/* Rss and Pss (kB) of the VMA of pid that starts at addr; 0 or -1. */
static inline int ft_smaps(pid_t pid, unsigned long addr, long *rss, long *pss)
{
	*rss = ft_smaps_kb(pid, addr, "Rss");
	*pss = ft_smaps_kb(pid, addr, "Pss");
	return *rss >= 0 && *pss >= 0 ? 0 : -1;
}

/* The /proc/PID/maps permissions ("rw-s") of the VMA holding addr. */
static inline int ft_maps_perms(pid_t pid, unsigned long addr, char perms[5],
				unsigned long *offset)
{
	char path[64], line[512];
	FILE *f;
	int r = -1;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e, off;
		char p[5];

		if (sscanf(line, "%lx-%lx %4s %lx", &s, &e, p, &off) == 4 &&
		    s <= addr && addr < e) {
			memcpy(perms, p, 5);
			*offset = off;
			r = 0;
			break;
		}
	}
	fclose(f);
	return r;
}

/* A helper's last act: wait until the test closes our stdin. */
static inline void ft_wait_for_eof(void)
{
	char c;

	while (read(0, &c, 1) > 0)
		;
}

static inline bool ft_on_tmpfs(const char *path)
{
	struct statfs sf;

	return statfs(path, &sf) == 0 && sf.f_type == TMPFS_MAGIC;
}

/*
 * The daemon's page cache as the kernel holds it: the allocated bytes of
 * every memfd named "upaged-cache" (or unnamed tmpfs file: a huge page
 * cache) among daemon pid's descriptors, each counted once (an object may
 * hold its file open twice, read-write and read-only). -1 if /proc/PID/fd
 * cannot be read.
 */

static inline long long ft_daemon_cache_bytes(pid_t pid)
{
	char path[64], fpath[64 + 256], link[128];
	ino_t seen[256];
	size_t nseen = 0, i;
	long long sum = 0;
	struct dirent *e;
	struct stat st;
	ssize_t n;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(fpath, sizeof(fpath), "%s/%s", path, e->d_name);
		n = readlink(fpath, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = '\0';
		/* A descriptor closed since readdir() is simply not counted.
		   A huge page cache's files are unnamed files on a tmpfs. */
		if ((strncmp(link, "/memfd:upaged-cache", 19) &&
		     (!strncmp(link, "/memfd:", 7) ||
		      !strstr(link, "(deleted)") || !ft_on_tmpfs(fpath))) ||
		    stat(fpath, &st) < 0)
			continue;
		for (i = 0; i < nseen && seen[i] != st.st_ino; i++)
			;
		if (i < nseen)
			continue;
		if (nseen < sizeof(seen) / sizeof(seen[0]))
			seen[nseen++] = st.st_ino;
		sum += (long long)st.st_blocks * 512;
	}
	closedir(d);
	return sum;
}

#ifdef UPAGE_PROTO_H
/* A connection for ft_status(), as upagectl opens one; fd or -errno. */
static inline int ft_status_connect(const char *sock)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(sock);
	int s;

	if (len >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, sock, len + 1);
	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;

		close(s);
		return r;
	}
	return s;
}

/* The daemon's STATUS reply on connection s; 0 or -errno. */
static inline int ft_status(int s, struct upage_status_reply *out)
{
	struct upage_hdr q = { .version = UPAGE_PROTO_VERSION,
			       .type = UPAGE_MSG_STATUS, .len = sizeof(q),
			       .id = 7 };
	ssize_t n;

	if (send(s, &q, sizeof(q), MSG_NOSIGNAL) != (ssize_t)sizeof(q))
		return -errno;
	n = recv(s, out, sizeof(*out), 0);
	if (n < 0)
		return -errno;
	if (n != (ssize_t)sizeof(*out) || out->hdr.id != q.id ||
	    out->hdr.type != (UPAGE_MSG_STATUS | UPAGE_MSG_REPLY))
		return -EBADMSG;
	return out->error;
}

/* The same on a connection of its own, for a single look. */
static inline int ft_status_of(const char *sock, struct upage_status_reply *out)
{
	int s = ft_status_connect(sock), r;

	if (s < 0)
		return s;
	r = ft_status(s, out);
	close(s);
	return r;
}
#endif

#ifdef UPAGE_UPAGE_H
/* Maps path (opened with oflags) and returns the mapping or MAP_FAILED. */
static inline void *ft_map_file(const char *path, int oflags, size_t len,
				int prot, int flags, off_t off)
{
	int fd = open(path, oflags | O_CLOEXEC);
	void *p;

	if (fd < 0)
		return MAP_FAILED;
	p = upage_mmap(NULL, len, prot, flags, fd, off);
	close(fd);
	return p;
}

/*
 * The helper role "reader SOCK PATH FIRST NPAGES": another client maps
 * NPAGES of PATH (pattern 1) shared from page FIRST, checks every byte,
 * reports "ok ADDR" and stays until told to go.
 */
static inline int ft_helper_reader(char **argv)
{
	struct upage_options o = { .socket_path = argv[0],
				   .arena_size = 1UL << 30 };
	unsigned long first = strtoul(argv[2], NULL, 0);
	unsigned long n = strtoul(argv[3], NULL, 0);
	unsigned char *p;
	int fd;

	if (upage_connect(&o) < 0)
		return 2;
	fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 3;
	p = upage_mmap(NULL, n * FT_PG, PROT_READ, MAP_SHARED, fd,
		       first * FT_PG);
	if (p == MAP_FAILED)
		return 4;
	for (unsigned long i = 0; i < n * FT_PG; i++)
		if (p[i] != ft_pat(first * FT_PG + i, 1)) {
			printf("bad %lu\n", i);
			return 5;
		}
	printf("ok %lx\n", (unsigned long)p);
	fflush(stdout);
	ft_wait_for_eof();
	return 0;
}
#endif

#endif
