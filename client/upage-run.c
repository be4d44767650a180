/*
 * upage-run.c - run an unmodified program with its mappings paged by upaged.
 *
 *   upage-run [OPTIONS] [--] PROGRAM [ARGS...]
 *
 * Contract
 *
 * - Checks the options, puts the policy in the environment that
 *   libupage-preload.so reads (UPAGE_REDIRECT, UPAGE_MIN_SIZE,
 *   UPAGE_PATH_PREFIX, UPAGED_SOCKET, UPAGE_DEBUG), puts the shim first in
 *   LD_PRELOAD, and execs PROGRAM in its own place: the program's exit
 *   status and the signal that kills it are upage-run's own.
 * - The shim is $UPAGE_PRELOAD if set, else the path fixed at build time
 *   (UPAGE_PRELOAD_PATH), else libupage-preload.so beside this executable.
 * - Exit status of its own: 125 bad options or no shim, 126 PROGRAM found
 *   but not executable, 127 PROGRAM not found (as env(1) and nice(1)).
 * - Options override the environment; what they do not say is left as
 *   the caller set it.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef UPAGE_PRELOAD_PATH
#define UPAGE_PRELOAD_PATH "/usr/local/lib/upage/libupage-preload.so"
#endif

enum { RUN_EXIT_FAIL = 125, RUN_EXIT_NOEXEC = 126, RUN_EXIT_NOTFOUND = 127 };

static void run_usage(FILE *f)
{
	fprintf(f,
		"usage: upage-run [OPTIONS] [--] PROGRAM [ARGS...]\n"
		"Runs PROGRAM with libupage-preload.so, so that the mappings\n"
		"it selects are paged by upaged. Without a reachable daemon the\n"
		"program runs exactly as it would without upage-run.\n"
		"\n"
		"options (each sets the environment variable in brackets):\n"
		"  -s, --socket PATH       daemon socket [UPAGED_SOCKET]\n"
		"                          (default /run/upaged/upaged.sock)\n"
		"  -r, --redirect WHAT     all, anon, file or none: which new\n"
		"                          mappings go to upaged [UPAGE_REDIRECT]\n"
		"                          (default all)\n"
		"  -m, --min-size SIZE     only mappings of at least SIZE bytes;\n"
		"                          suffix k, m or g [UPAGE_MIN_SIZE]\n"
		"                          (default 0)\n"
		"  -p, --path-prefix PFX   only files whose path starts with PFX;\n"
		"                          repeat or separate with ':'\n"
		"                          [UPAGE_PATH_PREFIX] (default any)\n"
		"  -d, --debug             one line on stderr per notable decision\n"
		"                          of the shim [UPAGE_DEBUG=1]\n"
		"  -h, --help              this text\n"
		"\n"
		"UPAGE_PRELOAD names the shim to use instead of the built-in\n"
		"path. Anonymous MAP_SHARED memory, huge pages and mappings with\n"
		"MAP_32BIT/MAP_GROWSDOWN/MAP_LOCKED/MAP_SYNC stay with the kernel.\n"
		"Exit status: PROGRAM's own; 125 upage-run failed, 126 PROGRAM\n"
		"not executable, 127 PROGRAM not found.\n");
}

static int run_fail(const char *fmt, const char *arg)
{
	fprintf(stderr, "upage-run: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	return RUN_EXIT_FAIL;
}

/* Same grammar as the shim: digits, then an optional k, m or g. */
static int run_size_ok(const char *s)
{
	unsigned long long v;
	unsigned int shift = 0;
	char *end;

	if (*s < '0' || *s > '9')
		return 0;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	}
	/* At most 1 TiB, so that the shift cannot overflow. */
	if (v > (1ULL << 40) >> shift)
		return 0;
	v <<= shift;
	return !*end;
}

/* The shim's path, checked readable; NULL when there is none. */
static const char *run_find_shim(char *buf, size_t size)
{
	const char *s = getenv("UPAGE_PRELOAD");
	ssize_t n;
	char *slash;

	if (s && *s)
		return s; /* the caller's, taken as given (may be a list) */
	if (access(UPAGE_PRELOAD_PATH, R_OK) == 0)
		return UPAGE_PRELOAD_PATH;
	n = readlink("/proc/self/exe", buf, size - 1);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	slash = strrchr(buf, '/');
	if (!slash || (size_t)(slash - buf) + sizeof("/libupage-preload.so") > size)
		return NULL;
	strcpy(slash, "/libupage-preload.so");
	return access(buf, R_OK) == 0 ? buf : NULL;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "redirect", required_argument, NULL, 'r' },
		{ "min-size", required_argument, NULL, 'm' },
		{ "path-prefix", required_argument, NULL, 'p' },
		{ "debug", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char prefixes[1024] = "", shimbuf[PATH_MAX], *preload;
	const char *shim, *old;
	size_t len;
	int c;

	/* '+': the first non-option is PROGRAM; its options are its own. */
	while ((c = getopt_long(argc, argv, "+s:r:m:p:dh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (!*optarg || strlen(optarg) >= 108)
				return run_fail("--socket %s: empty or longer "
						"than a socket path may be",
						optarg);
			setenv("UPAGED_SOCKET", optarg, 1);
			break;
		case 'r':
			if (strcmp(optarg, "all") && strcmp(optarg, "anon") &&
			    strcmp(optarg, "file") && strcmp(optarg, "none"))
				return run_fail("--redirect %s: not all, anon, "
						"file or none", optarg);
			setenv("UPAGE_REDIRECT", optarg, 1);
			break;
		case 'm':
			if (!run_size_ok(optarg))
				return run_fail("--min-size %s: not a size "
						"(digits, then k, m or g)",
						optarg);
			setenv("UPAGE_MIN_SIZE", optarg, 1);
			break;
		case 'p':
			len = strlen(prefixes);
			if (!*optarg ||
			    len + strlen(optarg) + 2 > sizeof(prefixes))
				return run_fail("--path-prefix %s: empty, or "
						"the prefixes are too long",
						optarg);
			if (len)
				strcat(prefixes, ":");
			strcat(prefixes, optarg);
			break;
		case 'd':
			setenv("UPAGE_DEBUG", "1", 1);
			break;
		case 'h':
			run_usage(stdout);
			return 0;
		default:
			run_usage(stderr);
			return RUN_EXIT_FAIL;
		}
	}
	if (optind >= argc) {
		run_usage(stderr);
		return RUN_EXIT_FAIL;
	}
	if (*prefixes)
		setenv("UPAGE_PATH_PREFIX", prefixes, 1);
	shim = run_find_shim(shimbuf, sizeof(shimbuf));
	if (!shim)
		return run_fail("cannot find libupage-preload.so (looked at "
				"%s and beside upage-run; set UPAGE_PRELOAD)",
				UPAGE_PRELOAD_PATH);
	old = getenv("LD_PRELOAD");
	len = strlen(shim) + (old ? strlen(old) : 0) + 2;
	preload = malloc(len);
	if (!preload)
		return run_fail("%s", strerror(errno));
	snprintf(preload, len, "%s%s%s", shim, old && *old ? " " : "",
		 old ? old : "");
	setenv("LD_PRELOAD", preload, 1);
	free(preload);
	execvp(argv[optind], argv + optind);
	c = errno;
	fprintf(stderr, "upage-run: %s: %s\n", argv[optind], strerror(c));
	return c == ENOENT ? RUN_EXIT_NOTFOUND : RUN_EXIT_NOEXEC;
}
