/*
 * config.c - upaged's settings, from the configuration file and the
 * command line.
 *
 * Contract
 *
 * - One table of options serves both sources, so every key of the file is
 *   also a flag (--KEY VALUE) and both are validated by the same code.
 * - Precedence: built-in defaults, then the file, then $UPAGED_SOCKET, then
 *   the flags, whatever their order on the command line.
 * - The file: one "key = value" per line; blank lines and lines starting
 *   with '#' are ignored; surrounding blanks are trimmed. An unknown key, a
 *   missing '=' or a bad value is an error naming the file and line; nothing
 *   is half-applied: upaged refuses to start.
 * - The default file (UPAGED_CONFIG, /etc/upaged.conf) is read only if it
 *   exists; a file named with --config must exist.
 * - config_init() returns -1 to go on, or the status to exit with (0 after
 *   --help or --print-config, 2 on a bad option or file).
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "upaged.h"

#ifndef UPAGED_CONFIG
#define UPAGED_CONFIG "/etc/upaged.conf"
#endif

struct config config = { .socket_gid = (gid_t)-1, .huge_pages = true };

/* Applies value to the setting; 0, or -1 with a reason in err. */
typedef int (*config_set_fn)(const char *val, char *err, size_t errlen);

static int config_uint(const char *val, unsigned long lo, unsigned long hi,
		       unsigned long *out, char *err, size_t errlen)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(val, &end, 10);
	if (errno || end == val || *end || *val == '-' || v < lo || v > hi) {
		snprintf(err, errlen, "'%s' is not a number in %lu..%lu",
			 val, lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

static int config_set_socket(const char *val, char *err, size_t errlen)
{
	if (!*val || strlen(val) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		snprintf(err, errlen, "socket path empty or longer than %zu bytes",
			 sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
		return -1;
	}
	snprintf(config.socket_path, sizeof(config.socket_path), "%s", val);
	return 0;
}

static int config_set_socket_group(const char *val, char *err, size_t errlen)
{
	struct group *gr;
	unsigned long gid;
	char *end;

	if (!strcmp(val, "none")) {
		config.socket_gid = (gid_t)-1;
		return 0;
	}
	errno = 0;
	gid = strtoul(val, &end, 10);
	if (*val && !*end && !errno && gid < (gid_t)-1) {
		config.socket_gid = (gid_t)gid;
		return 0;
	}
	gr = getgrnam(val);
	if (!gr) {
		snprintf(err, errlen, "no group named '%s'", val);
		return -1;
	}
	config.socket_gid = gr->gr_gid;
	return 0;
}

/* yes/true/1 or no/false/0 into *out; -1 with err filled otherwise. */
static int config_bool(const char *val, bool *out, char *err, size_t errlen)
{
	if (!strcmp(val, "yes") || !strcmp(val, "true") || !strcmp(val, "1"))
		*out = true;
	else if (!strcmp(val, "no") || !strcmp(val, "false") ||
		 !strcmp(val, "0"))
		*out = false;
	else {
		snprintf(err, errlen, "'%s' is not yes or no", val);
		return -1;
	}
	return 0;
}

static int config_set_foreground(const char *val, char *err, size_t errlen)
{
	return config_bool(val, &config.foreground, err, errlen);
}

static int config_set_huge_pages(const char *val, char *err, size_t errlen)
{
	return config_bool(val, &config.huge_pages, err, errlen);
}

static int config_set_log_level(const char *val, char *err, size_t errlen)
{
	int l = log_parse_level(val);

	if (l < 0) {
		snprintf(err, errlen, "'%s' is not error, warn, info or debug",
			 val);
		return -1;
	}
	log_level = l;
	return 0;
}

static int config_set_cluster(const char *val, char *err, size_t errlen)
{
	unsigned long v;

	if (config_uint(val, 1, 512, &v, err, errlen) < 0)
		return -1;
	upaged.cluster = v;
	return 0;
}

static int config_set_spin_us(const char *val, char *err, size_t errlen)
{
	unsigned long v;

	if (config_uint(val, 0, 10000, &v, err, errlen) < 0)
		return -1;
	upaged.spin_ns = (uint64_t)v * 1000;
	return 0;
}

/* A size in bytes with an optional K, M, G or T (binary) suffix. */
static int config_set_max_resident(const char *val, char *err, size_t errlen)
{
	unsigned long long v, mul = 1;
	char *end;

	errno = 0;
	v = strtoull(val, &end, 10);
	switch (*end) {
	case 'k': case 'K': mul = 1ULL << 10; end++; break;
	case 'm': case 'M': mul = 1ULL << 20; end++; break;
	case 'g': case 'G': mul = 1ULL << 30; end++; break;
	case 't': case 'T': mul = 1ULL << 40; end++; break;
	}
	if (errno || end == val || *end || *val == '-' ||
	    (v && v > ~0ULL / mul) || (v && v * mul < 64 * PAGE_SIZE)) {
		snprintf(err, errlen, "'%s' is not 0 or a size of at least "
			 "256K (suffixes K, M, G, T)", val);
		return -1;
	}
	config.max_resident_pages = (unsigned long)(v * mul / PAGE_SIZE);
	return 0;
}

static int config_set_cache_dir(const char *val, char *err, size_t errlen)
{
	if (!strcmp(val, "none")) {
		config.cache_dir[0] = '\0';
		return 0;
	}
	if (*val != '/' || strlen(val) >= sizeof(config.cache_dir)) {
		snprintf(err, errlen, "'%s' is not none or an absolute path "
			 "shorter than %zu bytes", val, sizeof(config.cache_dir));
		return -1;
	}
	snprintf(config.cache_dir, sizeof(config.cache_dir), "%s", val);
	return 0;
}

static const struct config_opt {
	const char *key;
	char shortopt;  /* 0: long only */
	bool flag;      /* a flag without argument means "yes" */
	config_set_fn set;
	const char *arg, *help;
} config_opts[] = {
	{ "socket", 's', false, config_set_socket, "PATH",
	  "listening socket (" UPAGE_DEFAULT_SOCKET ")" },
	{ "socket-group", 0, false, config_set_socket_group, "GROUP",
	  "group owning the socket upaged creates (none)" },
	{ "foreground", 'f', true, config_set_foreground, NULL,
	  "do not detach (no)" },
	{ "log-level", 'l', false, config_set_log_level, "LEVEL",
	  "error, warn, info or debug (info)" },
	{ "cluster", 'c', false, config_set_cluster, "PAGES",
	  "pages filled per fault, 1..512 (16)" },
	{ "spin-us", 0, false, config_set_spin_us, "MICROSECONDS",
	  "poll a busy userfaultfd this long, 0..10000 (20)" },
	{ "max-resident", 'm', false, config_set_max_resident, "SIZE",
	  "page cache budget, e.g. 512M; 0: no limit (0)" },
	{ "huge-pages", 0, false, config_set_huge_pages, "yes|no",
	  "2M pages for the page cache; under a budget, from 64M (yes)" },
	{ "cache-dir", 0, false, config_set_cache_dir, "DIR",
	  "huge pages on this tmpfs, not one of upaged's own (none)" },
};
#define CONFIG_NOPTS (sizeof(config_opts) / sizeof(config_opts[0]))

static const struct config_opt *config_find(const char *key)
{
	for (size_t i = 0; i < CONFIG_NOPTS; i++)
		if (!strcmp(config_opts[i].key, key))
			return &config_opts[i];
	return NULL;
}

static char *config_trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' ||
			 e[-1] == '\r'))
		*--e = '\0';
	return s;
}

static int config_load(const char *path, bool must_exist)
{
	char line[1024], err[256];
	unsigned int lineno = 0;
	FILE *f;
	int r = 0;

	f = fopen(path, "re");
	if (!f) {
		if (errno == ENOENT && !must_exist)
			return 0;
		fprintf(stderr, "upaged: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		const struct config_opt *o;
		char *key, *val, *eq;

		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			fprintf(stderr, "upaged: %s:%u: line too long\n", path,
				lineno);
			r = -1;
			break;
		}
		key = config_trim(line);
		if (!*key || *key == '#')
			continue;
		eq = strchr(key, '=');
		if (!eq) {
			fprintf(stderr, "upaged: %s:%u: expected 'key = value'\n",
				path, lineno);
			r = -1;
			break;
		}
		*eq = '\0';
		key = config_trim(key);
		val = config_trim(eq + 1);
		o = config_find(key);
		if (!o) {
			fprintf(stderr, "upaged: %s:%u: unknown key '%s'\n",
				path, lineno, key);
			r = -1;
			break;
		}
		if (o->set(val, err, sizeof(err)) < 0) {
			fprintf(stderr, "upaged: %s:%u: %s: %s\n", path, lineno,
				key, err);
			r = -1;
			break;
		}
	}
	if (!r && ferror(f)) {
		fprintf(stderr, "upaged: %s: read error\n", path);
		r = -1;
	}
	fclose(f);
	return r;
}

static void config_usage(FILE *f)
{
	fprintf(f, "usage: upaged [OPTION]...\n"
		   "  -C, --config FILE    settings file (" UPAGED_CONFIG
		   " if it exists)\n"
		   "      --print-config   print the settings in effect and exit\n"
		   "  -h, --help           this help\n"
		   "Every setting is a flag and a key of the settings file:\n");
	for (size_t i = 0; i < CONFIG_NOPTS; i++) {
		const struct config_opt *o = &config_opts[i];
		char left[64];

		snprintf(left, sizeof(left), "%c%c%s --%s%s%s",
			 o->shortopt ? '-' : ' ', o->shortopt ?: ' ',
			 o->shortopt ? "," : " ", o->key, o->arg ? " " : "",
			 o->arg ?: "");
		fprintf(f, "  %-32s %s\n", left, o->help);
	}
}

static void config_print(FILE *f)
{
	static const char *const levels[] = { "error", "warn", "info",
					      "debug" };
	struct group *gr = config.socket_gid == (gid_t)-1 ? NULL :
			   getgrgid(config.socket_gid);

	fprintf(f, "socket = %s\n", config.socket_path);
	if (config.socket_gid == (gid_t)-1)
		fprintf(f, "socket-group = none\n");
	else if (gr)
		fprintf(f, "socket-group = %s\n", gr->gr_name);
	else
		fprintf(f, "socket-group = %u\n", (unsigned int)config.socket_gid);
	fprintf(f, "foreground = %s\n", config.foreground ? "yes" : "no");
	fprintf(f, "log-level = %s\n", levels[log_level]);
	fprintf(f, "cluster = %lu\n", upaged.cluster);
	fprintf(f, "spin-us = %llu\n",
		(unsigned long long)(upaged.spin_ns / 1000));
	if (!config.max_resident_pages)
		fprintf(f, "max-resident = 0\n");
	else if (config.max_resident_pages % 256)
		fprintf(f, "max-resident = %luK\n",
			config.max_resident_pages * (PAGE_SIZE >> 10));
	else
		fprintf(f, "max-resident = %luM\n",
			config.max_resident_pages / 256);
	fprintf(f, "huge-pages = %s\n", config.huge_pages ? "yes" : "no");
	fprintf(f, "cache-dir = %s\n",
		config.cache_dir[0] ? config.cache_dir : "none");
}

int config_init(int argc, char **argv)
{
	enum { OPT_PRINT = 256, OPT_BASE = 512 };
	struct option lopts[CONFIG_NOPTS + 4];
	char shorts[3 * CONFIG_NOPTS + 8], err[256];
	const char *file = NULL, *env;
	bool print = false;
	int *picked, npicked = 0, c, idx, status = 2;
	char **vals;
	size_t ns = 0, n = 0;

	strcpy(shorts, "C:h");
	ns = strlen(shorts);
	for (size_t i = 0; i < CONFIG_NOPTS; i++) {
		const struct config_opt *o = &config_opts[i];

		lopts[n++] = (struct option){ o->key, o->flag ? no_argument :
					      required_argument, NULL,
					      OPT_BASE + (int)i };
		if (o->shortopt) {
			shorts[ns++] = o->shortopt;
			if (!o->flag)
				shorts[ns++] = ':';
		}
	}
	shorts[ns] = '\0';
	lopts[n++] = (struct option){ "config", required_argument, NULL, 'C' };
	lopts[n++] = (struct option){ "print-config", no_argument, NULL,
				      OPT_PRINT };
	lopts[n++] = (struct option){ "help", no_argument, NULL, 'h' };
	lopts[n] = (struct option){ 0 };

	/* Flags are kept aside and applied after the file. */
	picked = calloc((size_t)argc + 1, sizeof(*picked));
	vals = calloc((size_t)argc + 1, sizeof(*vals));
	if (!picked || !vals) {
		fprintf(stderr, "upaged: out of memory\n");
		goto out;
	}
	snprintf(config.socket_path, sizeof(config.socket_path), "%s",
		 UPAGE_DEFAULT_SOCKET);
	while ((c = getopt_long(argc, argv, shorts, lopts, NULL)) != -1) {
		idx = -1;
		if (c >= OPT_BASE)
			idx = c - OPT_BASE;
		for (size_t i = 0; idx < 0 && i < CONFIG_NOPTS; i++)
			if (c == config_opts[i].shortopt)
				idx = (int)i;
		if (idx >= 0) {
			picked[npicked] = idx;
			vals[npicked++] = config_opts[idx].flag ? (char *)"yes" :
					  optarg;
		} else if (c == 'C') {
			file = optarg;
		} else if (c == OPT_PRINT) {
			print = true;
		} else if (c == 'h') {
			config_usage(stdout);
			status = 0;
			goto out;
		} else {
			config_usage(stderr);
			goto out;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "upaged: unexpected argument '%s'\n",
			argv[optind]);
		config_usage(stderr);
		goto out;
	}
	if (config_load(file ?: UPAGED_CONFIG, file != NULL) < 0)
		goto out;
	env = getenv("UPAGED_SOCKET");
	if (env && *env && config_set_socket(env, err, sizeof(err)) < 0) {
		fprintf(stderr, "upaged: $UPAGED_SOCKET: %s\n", err);
		goto out;
	}
	for (int i = 0; i < npicked; i++) {
		const struct config_opt *o = &config_opts[picked[i]];

		if (o->set(vals[i], err, sizeof(err)) < 0) {
			fprintf(stderr, "upaged: --%s: %s\n", o->key, err);
			goto out;
		}
	}
	if (print) {
		config_print(stdout);
		status = 0;
		goto out;
	}
	status = -1;
out:
	free(picked);
	free(vals);
	return status;
}
