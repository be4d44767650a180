/*
 * main.c - upaged start-up: options, the listening socket, signals, the loop.
 *
 *   upaged [--socket PATH] [--foreground] [--log-level LEVEL]
 *          [--cluster PAGES] [--spin-us US]
 *
 * --cluster: pages filled per fault (16). --spin-us: how long the daemon
 * keeps polling a client's uffd after a fault before sleeping (20; 0 off).
 *
 * Prints "upaged: ready on PATH" on stderr once it accepts connections
 * (and tells systemd, if it started us). SIGTERM/SIGINT: stop accepting,
 * serve the faults already queued, free every client, exit 0.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "upaged.h"

struct upaged upaged = { .listen_fd = -1, .cluster = 16, .spin_ns = 20000 };

static void usage(FILE *f)
{
	fprintf(f, "usage: upaged [--socket PATH] [--foreground] "
		   "[--log-level error|warn|info|debug] [--cluster PAGES]\n"
		   "              [--spin-us MICROSECONDS]\n");
}

static void main_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	log_info("signal %d: stopping", w->signum);
	upaged.stopping = true;
	server_stop();
	ev_break(loop, EVBREAK_ALL);
}

/* Many clients each hold a socket, a uffd and a pidfd here. */
static void main_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "cluster", required_argument, NULL, 'c' },
		{ "spin-us", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *path = getenv("UPAGED_SOCKET");
	bool foreground = false;
	char *end;
	int c, r;

	if (!path || !*path)
		path = UPAGE_DEFAULT_SOCKET;
	while ((c = getopt_long(argc, argv, "s:fl:c:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			path = optarg;
			break;
		case 'f':
			foreground = true;
			break;
		case 'l':
			log_level = log_parse_level(optarg);
			if (log_level < 0) {
				usage(stderr);
				return 2;
			}
			break;
		case 'c':
			errno = 0;
			upaged.cluster = strtoul(optarg, &end, 0);
			if (errno || *end || !upaged.cluster ||
			    upaged.cluster > 512) {
				fprintf(stderr, "upaged: --cluster: 1..512\n");
				return 2;
			}
			break;
		case 'S':
			errno = 0;
			upaged.spin_ns = strtoul(optarg, &end, 0) * 1000;
			if (errno || *end || upaged.spin_ns > 10000000) {
				fprintf(stderr, "upaged: --spin-us: 0..10000\n");
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	main_raise_nofile();
	upaged.zero = mmap(NULL, upaged.cluster * PAGE_SIZE, PROT_READ,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (upaged.zero == MAP_FAILED) {
		log_err("mmap: %s", strerror(errno));
		return 1;
	}

	r = server_listen(path);
	if (r < 0) {
		if (r != -EADDRINUSE && r != -EEXIST)
			log_err("cannot listen on %s: %s", path, strerror(-r));
		return 1;
	}
	if (!foreground && daemon(0, 1) < 0) {
		log_err("daemon: %s", strerror(errno));
		server_stop();
		return 1;
	}
	/* After daemon(): the loop's epoll fd belongs to the final process. */
	upaged.loop = ev_default_loop(EVFLAG_AUTO);
	if (!upaged.loop) {
		log_err("cannot create the event loop");
		server_stop();
		return 1;
	}
	fault_init();
	ev_signal_init(&upaged.sigterm_w, main_signal_cb, SIGTERM);
	ev_signal_start(upaged.loop, &upaged.sigterm_w);
	ev_signal_init(&upaged.sigint_w, main_signal_cb, SIGINT);
	ev_signal_start(upaged.loop, &upaged.sigint_w);
	server_start();

	fprintf(stderr, "upaged: ready on %s\n", path);
	fflush(stderr);
	sd_notify(0, "READY=1");

	ev_run(upaged.loop, 0);

	/* Finish in-flight work: faults already queued get their pages. */
	sd_notify(0, "STOPPING=1");
	server_stop();
	fault_drain_all();
	client_free_all();
	while (upaged.mms)
		umm_kill(upaged.mms, "daemon stopping");
	ev_timer_stop(upaged.loop, &upaged.reap_w);
	ev_idle_stop(upaged.loop, &upaged.retry_w);
	ev_signal_stop(upaged.loop, &upaged.sigterm_w);
	ev_signal_stop(upaged.loop, &upaged.sigint_w);
	ev_loop_destroy(upaged.loop);
	munmap(upaged.zero, upaged.cluster * PAGE_SIZE);
	log_info("stopped");
	return 0;
}
