/*
 * bench_query.c - does asking the daemon questions slow its fault service?
 *
 * A private daemon ($UPAGED_BIN, --cluster 1 so that every touch is a
 * fault) serves this process's first touches of PAGES anonymous pages,
 * each touch timed. Three modes, interleaved in every repeat so that drift
 * hits them alike:
 *   quiet     nothing else talks to the daemon
 *   status    a thread sends STATUS (what `upagectl status` sends) every
 *             10 ms on its own connection, waiting for each answer
 *   clients   the same with CLIENTS (reads /proc/PID/smaps: the dearest
 *             query)
 * The table gives the median over RUNS repeats of each run's p50, p99 and
 * max fault latency (µs), and the queries answered and their round trip.
 * Prints a Markdown table; exits 77 when userfaultfd is unavailable.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <upage/upage.h>

#include "../upaged_harness.h"

#define PG 4096UL
#define PAGES 32768UL /* 128 MiB per run */
#define RUNS 5
#define PERIOD_NS 10000000L /* one query every 10 ms */

enum { QUIET, STATUS, CLIENTS, NMODES };
static const char *const mode_name[NMODES] = { "quiet", "status every 10 ms",
					       "clients every 10 ms" };

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median_of(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(v[0]), cmp_double);
	return v[n / 2];
}

struct result {
	double p50, p99, max;
	double queries, rtt_us;
};

static double lat[PAGES];
static double rtts[4096];

struct querier {
	const char *sock_path;
	int mode;
	atomic_bool stop;
	size_t n;
	int err;
};

/* Sends one query and reads its answer; 0 or -errno. */
static int query_once(int s, int mode, uint64_t id)
{
	uint64_t rep[UPAGE_MSG_MAX / 8 + 1];
	struct upage_query q;
	struct upage_hdr *h = &q.hdr;
	size_t len = mode == STATUS ? sizeof(*h) : sizeof(q);
	const struct upage_hdr *rh = (const void *)rep;
	ssize_t n;

	memset(&q, 0, sizeof(q));
	h->version = UPAGE_PROTO_VERSION;
	h->type = mode == STATUS ? UPAGE_MSG_STATUS : UPAGE_MSG_CLIENTS;
	h->len = (uint32_t)len;
	h->id = id;
	if (send(s, &q, len, MSG_NOSIGNAL) != (ssize_t)len)
		return -errno;
	n = recv(s, rep, sizeof(rep), 0);
	if (n < (ssize_t)sizeof(*rh) || rh->id != id)
		return n < 0 ? -errno : -EBADMSG;
	return 0;
}

static void *querier_main(void *arg)
{
	struct querier *qr = arg;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timespec next;
	int s;

	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", qr->sock_path);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		qr->err = -errno;
		return NULL;
	}
	clock_gettime(CLOCK_MONOTONIC, &next);
	while (!atomic_load(&qr->stop)) {
		double t = now_us();
		int r = query_once(s, qr->mode, qr->n + 1);

		if (r < 0) {
			qr->err = r;
			break;
		}
		if (qr->n < sizeof(rtts) / sizeof(rtts[0]))
			rtts[qr->n] = now_us() - t;
		qr->n++;
		/* The period is the experiment, not a wait for readiness. */
		next.tv_nsec += PERIOD_NS;
		if (next.tv_nsec >= 1000000000L) {
			next.tv_nsec -= 1000000000L;
			next.tv_sec++;
		}
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
	}
	close(s);
	return NULL;
}

static int one_run(struct harness *h, int mode, struct result *res)
{
	struct querier qr = { .sock_path = h->sock, .mode = mode };
	pthread_t th;
	unsigned char *p;
	size_t nq;

	p = upage_mmap(NULL, PAGES * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	if (mode != QUIET && pthread_create(&th, NULL, querier_main, &qr))
		return -EAGAIN;
	for (size_t i = 0; i < PAGES; i++) {
		double t = now_us();

		p[i * PG] = 1;
		lat[i] = now_us() - t;
	}
	if (mode != QUIET) {
		atomic_store(&qr.stop, true);
		pthread_join(th, NULL);
		if (qr.err) {
			fprintf(stderr, "bench: query: %s\n",
				strerror(-qr.err));
			return qr.err;
		}
	}
	upage_munmap(p, PAGES * PG);
	qsort(lat, PAGES, sizeof(lat[0]), cmp_double);
	res->p50 = lat[PAGES / 2];
	res->p99 = lat[PAGES * 99 / 100];
	res->max = lat[PAGES - 1];
	res->queries = (double)qr.n;
	nq = qr.n < sizeof(rtts) / sizeof(rtts[0]) ? qr.n :
		sizeof(rtts) / sizeof(rtts[0]);
	res->rtt_us = nq ? median_of(rtts, (int)nq) : 0;
	return 0;
}

int main(void)
{
	static const char *const args[] = { "--cluster", "1", NULL };
	struct result r[NMODES][RUNS];
	double q50[NMODES];
	struct harness h;

	if (harness_start_args(&h, args) < 0) {
		fprintf(stderr, "bench: cannot start %s\n", harness_bin());
		return 1;
	}
	if (harness_connect(&h, 1UL << 30) < 0) {
		harness_stop(&h);
		return 77; /* no userfaultfd here */
	}
	for (int run = 0; run < RUNS; run++)
		for (int m = 0; m < NMODES; m++)
			if (one_run(&h, m, &r[m][run]) < 0) {
				upage_disconnect();
				harness_stop(&h);
				return 1;
			}
	printf("\n### Fault latency while upagectl queries run, %lu pages "
	       "(1 page per fault), median of %d runs\n\n", PAGES, RUNS);
	printf("| %-20s | %8s | %8s | %9s | %8s | %13s |\n", "mode", "p50 µs",
	       "p99 µs", "max µs", "queries", "query rtt µs");
	printf("|----------------------|----------|----------|-----------|"
	       "----------|---------------|\n");
	for (int m = 0; m < NMODES; m++) {
		double a[RUNS], b[RUNS], c[RUNS], d[RUNS], e[RUNS];

		for (int i = 0; i < RUNS; i++) {
			a[i] = r[m][i].p50;
			b[i] = r[m][i].p99;
			c[i] = r[m][i].max;
			d[i] = r[m][i].queries;
			e[i] = r[m][i].rtt_us;
		}
		q50[m] = median_of(b, RUNS);
		printf("| %-20s | %8.2f | %8.2f | %9.1f | %8.0f | %13.1f |\n",
		       mode_name[m], median_of(a, RUNS), q50[m],
		       median_of(c, RUNS), median_of(d, RUNS),
		       median_of(e, RUNS));
	}
	printf("\np99 with status queries / quiet p99: %.2f; with clients "
	       "queries: %.2f\n", q50[STATUS] / q50[QUIET],
	       q50[CLIENTS] / q50[QUIET]);
	upage_disconnect();
	return harness_stop(&h) == 0 ? 0 : 1;
}
