/*
 * upagectl.c - ask a running upaged what it is doing.
 *
 *   upagectl [--socket PATH] [--json] COMMAND [ARGS]
 *
 * Contract
 *
 * - Every answer comes from the daemon over its socket (the 0x02xx queries
 *   of <upage/proto.h>); upagectl never reads the daemon's memory or
 *   files. It is not a paging client: it never says HELLO.
 * - Listed answers arrive page by page (see proto.h); upagectl asks for the
 *   next page until the daemon says it was the last.
 * - Output is text for people, or with --json exactly one JSON document
 *   per command (`top --json`: one per refresh, one per line).
 * - Exit status: 0 done, 1 other failure, 2 usage, 3 daemon not running,
 *   4 no such process, 5 permission refused, 6 daemon speaks another
 *   protocol version. Errors are one line on stderr.
 * - The README section "upagectl" documents commands, fields and codes.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include <upage/proto.h>
#include <upage/wire.h>

enum {
	EXIT_FAIL = 1,
	EXIT_USAGE = 2,
	EXIT_NODAEMON = 3,
	EXIT_NOPID = 4,
	EXIT_PERM = 5,
	EXIT_PROTO = 6,
};

/* vm_flags bits with the kernel's values (daemon/vma.h). */
#define CTL_VM_READ 0x1U
#define CTL_VM_WRITE 0x2U
#define CTL_VM_EXEC 0x4U
#define CTL_VM_MAYSHARE 0x80U

static const char *ctl_socket;
static bool ctl_json;
static int ctl_sock = -1;
static uint64_t ctl_id;
static volatile sig_atomic_t ctl_stop;

static void ctl_usage(FILE *f)
{
	fprintf(f,
		"usage: upagectl [--socket PATH] [--json] COMMAND\n"
		"commands:\n"
		"  status                      daemon-wide figures\n"
		"  clients                     one row per client process\n"
		"  maps PID                    the VMAs of PID, as /proc/PID/maps\n"
		"  pmap PID                    the VMAs of PID, as pmap(1)\n"
		"  files                       backing objects\n"
		"  who-maps FILE [OFFSET [LENGTH]]\n"
		"                              processes mapping (part of) FILE\n"
		"  top|watch [--interval SEC] [--count N]\n"
		"                              status and clients, refreshed\n"
		"  ping                        is the daemon answering\n");
}

/* Prints one line "upagectl: ..." and returns the exit status for err. */
static int ctl_fail(int err, const char *fmt, ...)
{
	va_list ap;

	fputs("upagectl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	switch (err) {
	case ENOENT:
	case ECONNREFUSED:
		return EXIT_NODAEMON;
	case ESRCH:
		return EXIT_NOPID;
	case EACCES:
	case EPERM:
		return EXIT_PERM;
	case EPROTO:
		return EXIT_PROTO;
	default:
		return EXIT_FAIL;
	}
}

static int ctl_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 10 };
	int s;

	if (strlen(ctl_socket) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, ctl_socket);
	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	/* A daemon that stops answering must not hang us. */
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(s);
		return -e;
	}
	ctl_sock = s;
	return 0;
}

/*
 * Sends req (len bytes) with fd (or -1) and receives the reply into rep
 * (UPAGE_MSG_MAX + 1 bytes). Returns the reply's length, at least the
 * header and an error field, or -errno: the transport's, or the daemon's
 * error when it answered with one.
 */
static long ctl_call(void *req, size_t len, uint16_t type, int fd, void *rep)
{
	struct upage_hdr *h = req;
	const struct upage_hdr *rh = rep;
	int32_t err;
	ssize_t n;

	h->version = UPAGE_PROTO_VERSION;
	h->type = type;
	h->len = (uint32_t)len;
	h->id = ++ctl_id;
	n = upage_wire_send(ctl_sock, req, len, fd, MSG_NOSIGNAL);
	if (n < 0)
		return errno == EAGAIN ? -ETIMEDOUT : -errno;
	do
		n = recv(ctl_sock, rep, UPAGE_MSG_MAX + 1, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN ? -ETIMEDOUT : -errno;
	if (n == 0)
		return -ECONNRESET;
	if ((size_t)n < sizeof(*rh) + sizeof(err) || n > UPAGE_MSG_MAX ||
	    rh->len != (uint32_t)n)
		return -EBADMSG;
	memcpy(&err, (const char *)rep + sizeof(*rh), sizeof(err));
	if (rh->version != UPAGE_PROTO_VERSION)
		return -EPROTO;
	if (rh->id != h->id || rh->type != (type | UPAGE_MSG_REPLY))
		return -EBADMSG;
	if (err < 0)
		return err;
	return n;
}

/* The reply buffer: one spare byte shows an oversized message. */
static uint64_t ctl_rep[UPAGE_MSG_MAX / 8 + 1];

typedef void (*ctl_entry_fn)(const void *entry, void *arg);
typedef void (*ctl_head_fn)(void *arg);

/*
 * Fetches every page of a listed query, then calls head (if any) and fn
 * on each entry: nothing is printed unless the whole answer came.
 * 0 or -errno.
 */
static int ctl_list(uint16_t type, struct upage_query *q, int fd,
		    size_t esize, ctl_head_fn head, ctl_entry_fn fn,
		    void *arg)
{
	const struct upage_list_reply *r = (const void *)ctl_rep;
	char *all = NULL;
	size_t n = 0;
	long len;
	int err = 0;

	for (;;) {
		char *p;

		len = ctl_call(q, sizeof(*q), type, fd, ctl_rep);
		if (len < 0) {
			err = (int)len;
			break;
		}
		if ((size_t)len < sizeof(*r) || r->entry_size != esize ||
		    (size_t)len != sizeof(*r) + (size_t)r->count * esize) {
			err = -EBADMSG;
			break;
		}
		p = realloc(all, (n + r->count) * esize + 1);
		if (!p) {
			err = -ENOMEM;
			break;
		}
		all = p;
		memcpy(all + n * esize, r + 1, (size_t)r->count * esize);
		n += r->count;
		if (r->flags & UPAGE_LIST_END)
			break;
		if (!r->count && r->cursor == q->cursor &&
		    r->cursor2 == q->cursor2) {
			err = -EBADMSG; /* no progress: never loop */
			break;
		}
		q->cursor = r->cursor;
		q->cursor2 = r->cursor2;
	}
	if (!err && head)
		head(arg);
	for (size_t i = 0; !err && i < n; i++)
		fn(all + i * esize, arg);
	free(all);
	return err;
}

/* ---- JSON output ---- */

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

/* "key": value pairs; sep is what goes before (",", "" for the first). */
static void json_u64(const char *sep, const char *key, uint64_t v)
{
	printf("%s\"%s\":%" PRIu64, sep, key, v);
}

static void json_key_str(const char *sep, const char *key, const char *v)
{
	printf("%s\"%s\":", sep, key);
	json_str(v);
}

/* ---- shared formatting ---- */

static void ctl_perms(uint32_t f, char *p)
{
	p[0] = f & CTL_VM_READ ? 'r' : '-';
	p[1] = f & CTL_VM_WRITE ? 'w' : '-';
	p[2] = f & CTL_VM_EXEC ? 'x' : '-';
	p[3] = f & CTL_VM_MAYSHARE ? 's' : 'p';
	p[4] = '\0';
}

/* One /proc/PID/maps line, padded as the kernel pads it (no newline). */
static void ctl_maps_line(const struct upage_map_entry *e, char *buf,
			  size_t size)
{
	char perms[5];
	int n;

	ctl_perms(e->vm_flags, perms);
	n = snprintf(buf, size, "%08" PRIx64 "-%08" PRIx64 " %s %08" PRIx64
		     " %02x:%02x %" PRIu64 " ", e->start, e->end, perms,
		     e->offset, e->dev_major, e->dev_minor, e->ino);
	/* The kernel pads to column 72, then one space before the path. */
	if (e->path[0] && n > 0 && (size_t)n < size)
		snprintf(buf + n, size - (size_t)n, "%*s %s",
			 n < 72 ? 72 - n : 0, "", e->path);
}

/* Percentile p (0..100] from the log2 histogram: the bucket's upper end,
   no more than the maximum seen. */
static uint64_t ctl_percentile(const struct upage_status_reply *s, double p)
{
	uint64_t want, seen = 0;

	if (!s->lat_count)
		return 0;
	want = (uint64_t)(p / 100.0 * (double)s->lat_count + 0.999999);
	if (!want)
		want = 1;
	for (int i = 0; i < UPAGE_LAT_BUCKETS; i++) {
		seen += s->lat_hist[i];
		if (seen >= want) {
			uint64_t top = i >= 63 ? UINT64_MAX : (2ULL << i) - 1;

			return top < s->lat_max_ns ? top : s->lat_max_ns;
		}
	}
	return s->lat_max_ns;
}

/* ---- ping ---- */

static int cmd_ping(void)
{
	struct upage_hdr h;
	struct timespec a, b;
	long n;
	double us;

	clock_gettime(CLOCK_MONOTONIC, &a);
	n = ctl_call(&h, sizeof(h), UPAGE_MSG_PING, -1, ctl_rep);
	clock_gettime(CLOCK_MONOTONIC, &b);
	if (n < 0)
		return ctl_fail((int)-n, "ping: %s", strerror((int)-n));
	us = (double)(b.tv_sec - a.tv_sec) * 1e6 +
	     (double)(b.tv_nsec - a.tv_nsec) / 1e3;
	if (ctl_json)
		printf("{\"ok\":true,\"rtt_us\":%.1f}\n", us);
	else
		printf("pong from %s in %.1f us\n", ctl_socket, us);
	return 0;
}

/* ---- status ---- */

static int ctl_get_status(struct upage_status_reply *s)
{
	struct upage_hdr h;
	long n = ctl_call(&h, sizeof(h), UPAGE_MSG_STATUS, -1, ctl_rep);

	if (n < 0)
		return (int)n;
	if ((size_t)n != sizeof(*s))
		return -EBADMSG;
	memcpy(s, ctl_rep, sizeof(*s));
	s->version[sizeof(s->version) - 1] = '\0';
	return 0;
}

static void status_json(const struct upage_status_reply *s)
{
	const struct upage_counters *g = &s->global;

	printf("{");
	json_key_str("", "version", s->version);
	json_u64(",", "protocol", s->proto_version);
	printf(",\"uptime_s\":%.3f", (double)s->uptime_ns / 1e9);
	json_u64(",", "clients", s->clients);
	json_u64(",", "processes", s->mms);
	json_u64(",", "vmas", s->vmas);
	json_u64(",", "mapped_kb", s->mapped_pages * 4);
	json_u64(",", "objects", s->objects);
	json_u64(",", "resident_kb", s->resident_pages * 4);
	json_u64(",", "dirty_kb", s->dirty_pages * 4);
	printf(",\"faults\":{");
	json_u64("", "total", s->faults);
	json_u64(",", "zero_fill", s->faults_zero);
	json_u64(",", "file_read", s->faults_file);
	json_u64(",", "cow_write", s->faults_cow);
	json_u64(",", "wp_dirty", s->faults_wp);
	json_u64(",", "minor", s->faults_minor);
	json_u64(",", "other", s->faults_other);
	json_u64(",", "write", g->faults_write);
	printf("},\"fault_latency_ns\":{");
	json_u64("", "count", s->lat_count);
	json_u64(",", "p50", ctl_percentile(s, 50));
	json_u64(",", "p90", ctl_percentile(s, 90));
	json_u64(",", "p99", ctl_percentile(s, 99));
	json_u64(",", "max", s->lat_max_ns);
	json_u64(",", "mean", s->lat_count ? s->lat_sum_ns / s->lat_count : 0);
	printf(",\"log2_buckets\":[");
	for (int i = 0; i < UPAGE_LAT_BUCKETS; i++)
		printf("%s%" PRIu64, i ? "," : "", s->lat_hist[i]);
	printf("]},\"io\":{");
	json_u64("", "read_ios", s->read_ios);
	json_u64(",", "read_bytes", s->read_bytes);
	json_u64(",", "readahead_pages", s->ra_pages);
	json_u64(",", "readahead_hits", s->faults_minor);
	json_u64(",", "writeback_ios", s->writeback_ios);
	json_u64(",", "writeback_bytes", s->writeback_bytes);
	json_u64(",", "evicted_pages", s->evicted_pages);
	json_u64(",", "errors", s->io_errors);
	printf("},\"budget\":{");
	json_u64("", "max_resident_kb", s->budget_pages * 4);
	json_u64(",", "low_kb", s->low_pages * 4);
	json_u64(",", "resident_peak_kb", s->resident_peak_pages * 4);
	json_u64(",", "evict_runs", s->evict_runs);
	json_u64(",", "evicted_pages", s->evicted_pages);
	json_u64(",", "writeback_pages", s->evict_writeback_pages);
	json_u64(",", "kept_pages", s->evict_kept_pages);
	json_u64(",", "refaults", s->refaults);
	json_u64(",", "advised_pages", s->advised_pages);
	printf("},\"fills\":{");
	json_u64("", "pages", g->fill_pages);
	json_u64(",", "calls", g->fill_calls);
	json_u64(",", "eexist", g->fill_eexist);
	json_u64(",", "eagain", g->fill_eagain);
	json_u64(",", "wakes", g->wakes);
	printf("},\"events\":{");
	json_u64("", "fork", g->ev_fork);
	json_u64(",", "remap", g->ev_remap);
	json_u64(",", "remove", g->ev_remove);
	json_u64(",", "unmap", g->ev_unmap);
	printf("}");
	json_u64(",", "requests", g->requests);
	json_u64(",", "bad_messages", g->bad_messages);
	printf("}");
}

static void ctl_print_ns(const char *label, uint64_t ns)
{
	printf(" %s %.1f us", label, (double)ns / 1e3);
}

static void status_text(const struct upage_status_reply *s)
{
	const struct upage_counters *g = &s->global;
	uint64_t up = s->uptime_ns / 1000000000ULL;

	printf("upaged %s, protocol %u, up %" PRIu64 "d %02" PRIu64 ":%02"
	       PRIu64 ":%02" PRIu64 "\n", s->version, s->proto_version,
	       up / 86400, up / 3600 % 24, up / 60 % 60, up % 60);
	printf("clients    %u connections, %u processes, %" PRIu64
	       " VMAs, %" PRIu64 " KB mapped\n", s->clients, s->mms, s->vmas,
	       s->mapped_pages * 4);
	printf("objects    %" PRIu64 ", %" PRIu64 " KB resident, %" PRIu64
	       " KB dirty\n", s->objects, s->resident_pages * 4,
	       s->dirty_pages * 4);
	printf("faults     %" PRIu64 ": zero-fill %" PRIu64 ", file read %"
	       PRIu64 ", COW write %" PRIu64 ", WP/dirty %" PRIu64
	       ", minor %" PRIu64 ", other %" PRIu64 "\n", s->faults,
	       s->faults_zero, s->faults_file, s->faults_cow, s->faults_wp,
	       s->faults_minor, s->faults_other);
	printf("latency   ");
	ctl_print_ns("p50", ctl_percentile(s, 50));
	ctl_print_ns("p90", ctl_percentile(s, 90));
	ctl_print_ns("p99", ctl_percentile(s, 99));
	ctl_print_ns("max", s->lat_max_ns);
	printf(" (%" PRIu64 " faults timed)\n", s->lat_count);
	printf("io         %" PRIu64 " reads (%" PRIu64 " bytes), %" PRIu64
	       " pages read ahead, %" PRIu64 " readahead hits\n",
	       s->read_ios, s->read_bytes, s->ra_pages, s->faults_minor);
	printf("writeback  %" PRIu64 " writes (%" PRIu64 " bytes), %" PRIu64
	       " pages evicted, %" PRIu64 " I/O errors\n", s->writeback_ios,
	       s->writeback_bytes, s->evicted_pages, s->io_errors);
	if (s->budget_pages)
		printf("budget     %" PRIu64 " KB (low %" PRIu64 " KB), peak %"
		       PRIu64 " KB resident, %" PRIu64 " runs, %" PRIu64
		       " written first, %" PRIu64 " kept, %" PRIu64
		       " refaults\n", s->budget_pages * 4, s->low_pages * 4,
		       s->resident_peak_pages * 4, s->evict_runs,
		       s->evict_writeback_pages, s->evict_kept_pages,
		       s->refaults);
	else
		printf("budget     none, peak %" PRIu64 " KB resident\n",
		       s->resident_peak_pages * 4);
	printf("fills      %" PRIu64 " pages in %" PRIu64 " calls, %" PRIu64
	       " wakes, %" PRIu64 " retried\n", g->fill_pages, g->fill_calls,
	       g->wakes, g->fill_eagain);
	printf("requests   %" PRIu64 ", %" PRIu64 " bad messages\n",
	       g->requests, g->bad_messages);
}

static int cmd_status(void)
{
	struct upage_status_reply s;
	int r = ctl_get_status(&s);

	if (r < 0)
		return ctl_fail(-r, "status: %s", strerror(-r));
	if (ctl_json) {
		status_json(&s);
		printf("\n");
	} else {
		status_text(&s);
	}
	return 0;
}

/* ---- clients ---- */

struct ctl_clients {
	unsigned n;
	bool json;
	bool bare; /* JSON: the list alone (inside top's document) */
};

static void clients_entry(const void *ep, void *arg)
{
	const struct upage_client_entry *e = ep;
	struct ctl_clients *cc = arg;
	char comm[sizeof(e->comm) + 1];

	memcpy(comm, e->comm, sizeof(e->comm));
	comm[sizeof(e->comm)] = '\0';
	if (cc->json) {
		printf("%s{", cc->n ? "," : "");
		printf("\"pid\":%d", e->pid);
		json_u64(",", "uid", e->uid);
		json_key_str(",", "command", comm);
		json_u64(",", "vmas", e->map_count);
		json_u64(",", "mapped_kb", e->mapped_pages * 4);
		if (e->resident_pages == UINT64_MAX)
			printf(",\"resident_kb\":null");
		else
			json_u64(",", "resident_kb", e->resident_pages * 4);
		json_u64(",", "faults", e->faults);
		printf(",\"connected\":%s}", e->connected ? "true" : "false");
	} else {
		char rss[24] = "?";

		if (e->resident_pages != UINT64_MAX)
			snprintf(rss, sizeof(rss), "%" PRIu64,
				 e->resident_pages * 4);
		printf("%7d %6u %-16s %6" PRIu64 " %10" PRIu64 " %10s %10"
		       PRIu64 "%s\n", e->pid, e->uid, comm, e->map_count,
		       e->mapped_pages * 4, rss, e->faults,
		       e->connected ? "" : " (not connected)");
	}
	cc->n++;
}

static void clients_head(void *arg)
{
	struct ctl_clients *cc = arg;

	if (cc->json)
		printf(cc->bare ? "[" : "{\"clients\":[");
	else
		printf("%7s %6s %-16s %6s %10s %10s %10s\n", "PID", "UID",
		       "COMMAND", "VMAS", "MAPPED_KB", "RSS_KB", "FAULTS");
}

static int ctl_clients(bool json, bool bare)
{
	struct ctl_clients cc = { .json = json, .bare = bare };
	struct upage_query q;
	int r;

	memset(&q, 0, sizeof(q));
	r = ctl_list(UPAGE_MSG_CLIENTS, &q, -1,
		     sizeof(struct upage_client_entry), clients_head,
		     clients_entry, &cc);
	if (!r && json)
		printf(bare ? "]" : "]}");
	return r;
}

static int cmd_clients(void)
{
	int r = ctl_clients(ctl_json, false);

	if (r < 0)
		return ctl_fail(-r, "clients: %s", strerror(-r));
	if (ctl_json)
		printf("\n");
	return 0;
}

/* ---- maps, pmap ---- */

static int ctl_parse_pid(const char *s, int *pid)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v <= 0 || v > INT32_MAX)
		return -1;
	*pid = (int)v;
	return 0;
}

struct ctl_maps {
	unsigned n;
	bool pmap;
	int pid;
	const char *comm;
	uint64_t mapped, wpriv, shared;
};

static void maps_head(void *arg)
{
	struct ctl_maps *cm = arg;

	if (ctl_json) {
		printf("{\"pid\":%d", cm->pid);
		if (cm->pmap)
			json_key_str(",", "command", cm->comm);
		printf(",\"maps\":[");
	} else if (cm->pmap) {
		printf("%s[%d]\n", cm->comm, cm->pid);
	}
}

static void maps_entry(const void *ep, void *arg)
{
	const struct upage_map_entry *e = ep;
	struct ctl_maps *cm = arg;
	uint64_t kb = (e->end - e->start) / 1024;
	char line[512], perms[5], path[sizeof(e->path) + 1];

	memcpy(path, e->path, sizeof(e->path));
	path[sizeof(e->path)] = '\0';
	ctl_perms(e->vm_flags, perms);
	cm->mapped += kb;
	if (perms[3] == 's')
		cm->shared += kb;
	else if (perms[1] == 'w')
		cm->wpriv += kb;
	if (ctl_json) {
		char dev[32];

		snprintf(dev, sizeof(dev), "%02x:%02x", e->dev_major,
			 e->dev_minor);
		printf("%s{", cm->n ? "," : "");
		json_u64("", "start", e->start);
		json_u64(",", "end", e->end);
		if (cm->pmap)
			json_u64(",", "size_kb", kb);
		json_key_str(",", "perms", perms);
		json_u64(",", "offset", e->offset);
		json_key_str(",", "dev", dev);
		json_u64(",", "inode", e->ino);
		json_key_str(",", "path", path);
		json_u64(",", "vm_flags", e->vm_flags);
		printf("}");
	} else if (cm->pmap) {
		printf("%08" PRIx64 " (%" PRIu64 " KB) %s (%02x:%02x %" PRIu64
		       ")%s%s\n", e->start, kb, perms, e->dev_major,
		       e->dev_minor, e->ino, path[0] ? " " : "", path);
	} else {
		ctl_maps_line(e, line, sizeof(line));
		printf("%s\n", line);
	}
	cm->n++;
}

/* The command name of pid, as the daemon reports it. */
static void ctl_comm_entry(const void *ep, void *arg)
{
	const struct upage_client_entry *e = ep;

	memcpy(arg, e->comm, sizeof(e->comm));
}

static int cmd_maps(int argc, char **argv, bool pmap)
{
	struct ctl_maps cm = { .pmap = pmap };
	char comm[sizeof(((struct upage_client_entry *)0)->comm) + 1] = "";
	const char *what = pmap ? "pmap" : "maps";
	struct upage_query q;
	int pid, r;

	if (argc != 1 || ctl_parse_pid(argv[0], &pid) < 0) {
		ctl_usage(stderr);
		return EXIT_USAGE;
	}
	memset(&q, 0, sizeof(q));
	q.pid = pid;
	if (pmap) {
		r = ctl_list(UPAGE_MSG_CLIENTS, &q, -1,
			     sizeof(struct upage_client_entry), NULL,
			     ctl_comm_entry, comm);
		if (r < 0)
			goto fail;
		memset(&q, 0, sizeof(q));
		q.pid = pid;
	}
	cm.pid = pid;
	cm.comm = comm;
	r = ctl_list(UPAGE_MSG_MAPS, &q, -1, sizeof(struct upage_map_entry),
		     maps_head, maps_entry, &cm);
	if (r < 0)
		goto fail;
	if (ctl_json) {
		printf("]");
		if (pmap) {
			json_u64(",", "mapped_kb", cm.mapped);
			json_u64(",", "writable_private_kb", cm.wpriv);
			json_u64(",", "shared_kb", cm.shared);
		}
		printf("}\n");
	} else if (pmap) {
		printf("mapped: %" PRIu64 " KB writable/private: %" PRIu64
		       " KB shared: %" PRIu64 " KB\n", cm.mapped, cm.wpriv,
		       cm.shared);
	}
	return 0;
fail:
	if (r == -ESRCH)
		return ctl_fail(ESRCH, "%s: no process %d is known to upaged",
				what, pid);
	if (r == -EACCES)
		return ctl_fail(EACCES, "%s: permission refused: process %d "
				"belongs to another user", what, pid);
	return ctl_fail(-r, "%s: %s", what, strerror(-r));
}

/* ---- files ---- */

static void files_entry(const void *ep, void *arg)
{
	const struct upage_file_entry *e = ep;
	unsigned *n = arg;
	char path[sizeof(e->path) + 1];

	memcpy(path, e->path, sizeof(e->path));
	path[sizeof(e->path)] = '\0';
	if (ctl_json) {
		printf("%s{", *n ? "," : "");
		json_key_str("", "path", path);
		json_u64(",", "dev", e->dev);
		json_u64(",", "inode", e->ino);
		json_u64(",", "size", e->size);
		json_u64(",", "resident_kb", e->resident_pages * 4);
		json_u64(",", "dirty_kb", e->dirty_pages * 4);
		json_u64(",", "mappers", e->mappers);
		json_u64(",", "vmas", e->vmas);
		printf("}");
	} else {
		printf("%12" PRIu64 " %10" PRIu64 " %10" PRIu64 " %7u %5u %s\n",
		       e->size, e->resident_pages * 4, e->dirty_pages * 4,
		       e->mappers, e->vmas, path);
	}
	(*n)++;
}

static void files_head(void *arg)
{
	if (ctl_json)
		printf("{\"files\":[");
	else
		printf("%12s %10s %10s %7s %5s %s\n", "SIZE", "RSS_KB",
		       "DIRTY_KB", "MAPPERS", "VMAS", "PATH");
}

static int cmd_files(void)
{
	struct upage_query q;
	unsigned n = 0;
	int r;

	memset(&q, 0, sizeof(q));
	r = ctl_list(UPAGE_MSG_FILES, &q, -1, sizeof(struct upage_file_entry),
		     files_head, files_entry, &n);
	if (!r && ctl_json)
		printf("]}\n");
	if (r < 0)
		return ctl_fail(-r, "files: %s", strerror(-r));
	return 0;
}

/* ---- who-maps ---- */

static int who_cmp(const void *a, const void *b)
{
	const struct upage_rmap_entry *x = a, *y = b;

	if (x->pid != y->pid)
		return x->pid < y->pid ? -1 : 1;
	return x->start < y->start ? -1 : x->start > y->start;
}

static int ctl_parse_u64(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	if (*s == '-')
		return -1;
	*v = strtoull(s, &end, 0);
	return errno || *end || end == s ? -1 : 0;
}

/* Every entry of an RMAP_QUERY (skip-paginated); count or -errno. */
static long who_fetch(struct upage_rmap_query *q, int fd,
		      struct upage_rmap_entry **out)
{
	const struct upage_rmap_reply *r = (const void *)ctl_rep;
	struct upage_rmap_entry *all = NULL;
	size_t n = 0;
	long len;

	for (;;) {
		void *p;

		q->skip = n;
		len = ctl_call(q, sizeof(*q), UPAGE_MSG_RMAP_QUERY, fd, ctl_rep);
		if (len < 0)
			break;
		if ((size_t)len < sizeof(*r) ||
		    (size_t)len != sizeof(*r) + r->count * sizeof(r->entry[0])) {
			len = -EBADMSG;
			break;
		}
		p = realloc(all, (n + r->count + 1) * sizeof(*all));
		if (!p) {
			len = -ENOMEM;
			break;
		}
		all = p;
		memcpy(all + n, r->entry, r->count * sizeof(r->entry[0]));
		n += r->count;
		if (n >= r->total)
			break;
		if (!r->count) {
			len = -EBADMSG; /* no progress: never loop */
			break;
		}
	}
	if (len < 0) {
		free(all);
		return len;
	}
	*out = all;
	return (long)n;
}

static int cmd_who_maps(int argc, char **argv)
{
	struct upage_rmap_entry *v = NULL;
	struct upage_rmap_query q;
	uint64_t off = 0, len = 0;
	bool has_len = argc > 2;
	int fd, e;
	long n;

	if (argc < 1 || argc > 3 ||
	    (argc > 1 && ctl_parse_u64(argv[1], &off) < 0) ||
	    (has_len && (ctl_parse_u64(argv[2], &len) < 0 || !len)) ||
	    off + len < off) {
		ctl_usage(stderr);
		return EXIT_USAGE;
	}
	/* We open it, with our own rights; the daemon never opens paths. */
	fd = open(argv[0], O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		e = errno;
		return ctl_fail(e == ENOENT ? 0 : e, "who-maps: %s: %s",
				argv[0], strerror(e));
	}
	memset(&q, 0, sizeof(q));
	q.first = off >> 12;
	q.npages = has_len ? ((off + len - 1) >> 12) - q.first + 1 : 0;
	n = who_fetch(&q, fd, &v);
	close(fd);
	if (n == -ENODEV)
		return ctl_fail(0, "who-maps: %s: not a regular file", argv[0]);
	if (n < 0)
		return ctl_fail((int)-n, "who-maps: %s", strerror((int)-n));
	qsort(v, (size_t)n, sizeof(*v), who_cmp);
	if (ctl_json) {
		printf("{");
		json_key_str("", "file", argv[0]);
		json_u64(",", "offset", off);
		if (has_len)
			json_u64(",", "length", len);
		printf(",\"mappings\":[");
	} else {
		printf("%7s %-33s %8s %s\n", "PID", "ADDRESS", "OFFSET",
		       "PERMS");
	}
	for (long i = 0; i < n; i++) {
		char perms[5];

		ctl_perms(v[i].vm_flags, perms);
		if (ctl_json) {
			printf("%s{\"pid\":%d", i ? "," : "", v[i].pid);
			json_u64(",", "start", v[i].start);
			json_u64(",", "end", v[i].end);
			json_u64(",", "offset", v[i].pgoff << 12);
			json_key_str(",", "perms", perms);
			printf("}");
		} else {
			printf("%7d %016" PRIx64 "-%016" PRIx64 " %08" PRIx64
			       " %s\n", v[i].pid, v[i].start, v[i].end,
			       v[i].pgoff << 12, perms);
		}
	}
	if (ctl_json)
		printf("]}\n");
	free(v);
	return 0;
}

/* ---- top ---- */

static void ctl_on_signal(int sig)
{
	ctl_stop = 1;
}

static int cmd_top(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "interval", required_argument, NULL, 'i' },
		{ "count", required_argument, NULL, 'n' },
		{ 0 },
	};
	bool tty = isatty(STDOUT_FILENO);
	struct upage_status_reply s;
	double interval = 1.0;
	long count = 0, done = 0;
	struct sigaction sa;
	char *end;
	int c, r;

	optind = 0; /* argv[0] is the command: start from argv[1] */
	while ((c = getopt_long(argc, argv, "+i:n:", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			interval = strtod(optarg, &end);
			if (*end || !(interval >= 0.01 && interval <= 3600)) {
				fprintf(stderr, "upagectl: --interval: "
						"0.01..3600 seconds\n");
				return EXIT_USAGE;
			}
			break;
		case 'n':
			count = strtol(optarg, &end, 10);
			if (*end || count <= 0) {
				fprintf(stderr, "upagectl: --count: a "
						"positive number\n");
				return EXIT_USAGE;
			}
			break;
		default:
			ctl_usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		ctl_usage(stderr);
		return EXIT_USAGE;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = ctl_on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	while (!ctl_stop) {
		struct timespec ts;

		r = ctl_get_status(&s);
		if (r < 0)
			return ctl_fail(-r, "top: %s", strerror(-r));
		if (ctl_json) {
			/* One document per refresh, one per line. */
			printf("{\"status\":");
			status_json(&s);
			printf(",\"clients\":");
		} else {
			if (tty)
				printf("\033[H\033[2J");
			status_text(&s);
			printf("\n");
		}
		r = ctl_clients(ctl_json, true);
		if (r < 0)
			return ctl_fail(-r, "top: %s", strerror(-r));
		if (ctl_json)
			printf("}\n");
		else if (!tty)
			printf("\n");
		fflush(stdout);
		if (count && ++done >= count)
			break;
		/* The refresh interval, not a wait for anything. */
		ts.tv_sec = (time_t)interval;
		ts.tv_nsec = (long)((interval - (double)ts.tv_sec) * 1e9);
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !ctl_stop)
			;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *cmd;
	int c, r;

	ctl_socket = getenv("UPAGED_SOCKET");
	if (!ctl_socket || !*ctl_socket)
		ctl_socket = UPAGE_DEFAULT_SOCKET;
	/* '+': options after the command belong to the command. */
	while ((c = getopt_long(argc, argv, "+s:jh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			ctl_socket = optarg;
			break;
		case 'j':
			ctl_json = true;
			break;
		case 'h':
			ctl_usage(stdout);
			return 0;
		default:
			ctl_usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		ctl_usage(stderr);
		return EXIT_USAGE;
	}
	cmd = argv[optind];
	argc -= optind + 1;
	argv += optind + 1;
	if (strcmp(cmd, "status") && strcmp(cmd, "clients") &&
	    strcmp(cmd, "maps") && strcmp(cmd, "pmap") &&
	    strcmp(cmd, "files") && strcmp(cmd, "who-maps") &&
	    strcmp(cmd, "top") && strcmp(cmd, "watch") &&
	    strcmp(cmd, "ping")) {
		fprintf(stderr, "upagectl: unknown command '%s'\n", cmd);
		ctl_usage(stderr);
		return EXIT_USAGE;
	}
	if (argc && (!strcmp(cmd, "status") || !strcmp(cmd, "clients") ||
		     !strcmp(cmd, "files") || !strcmp(cmd, "ping"))) {
		ctl_usage(stderr);
		return EXIT_USAGE;
	}
	r = ctl_connect();
	if (r < 0) {
		if (r == -ENOENT || r == -ECONNREFUSED)
			return ctl_fail(-r, "upaged is not running (%s: %s)",
					ctl_socket, strerror(-r));
		return ctl_fail(-r, "cannot connect to %s: %s", ctl_socket,
				strerror(-r));
	}
	if (!strcmp(cmd, "status"))
		r = cmd_status();
	else if (!strcmp(cmd, "clients"))
		r = cmd_clients();
	else if (!strcmp(cmd, "maps"))
		r = cmd_maps(argc, argv, false);
	else if (!strcmp(cmd, "pmap"))
		r = cmd_maps(argc, argv, true);
	else if (!strcmp(cmd, "files"))
		r = cmd_files();
	else if (!strcmp(cmd, "who-maps"))
		r = cmd_who_maps(argc, argv);
	else if (!strcmp(cmd, "ping"))
		r = cmd_ping();
	else
		r = cmd_top(argc + 1, argv - 1);
	close(ctl_sock);
	return r;
}
