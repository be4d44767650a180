/*
 * main.c - upaged start-up: options, the listening socket, signals, the loop.
 *
 *   upaged [--config FILE] [--socket PATH] [--socket-group GROUP]
 *          [--foreground] [--log-level LEVEL] [--cluster PAGES]
 *          [--spin-us US] [--print-config]
 *
 * Settings come from config.c (file and flags, see upaged(8)).
 * --cluster: pages filled per fault (16). --spin-us: how long the daemon
 * keeps polling a client's uffd after a fault before sleeping (20; 0 off).
 *
 * Prints "upaged: ready on PATH" on stderr once it accepts connections
 * (and tells systemd, if it started us). SIGTERM/SIGINT: stop accepting,
 * serve the faults already queued, free every client, exit 0.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "upaged.h"

struct upaged upaged = { .listen_fd = -1, .cluster = 16, .spin_ns = 20000 };

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
	int r;

	r = config_init(argc, argv);
	if (r >= 0)
		return r;
	signal(SIGPIPE, SIG_IGN);
	main_raise_nofile();
	upaged.zero = mmap(NULL, upaged.cluster * PAGE_SIZE, PROT_READ,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (upaged.zero == MAP_FAILED) {
		log_err("mmap: %s", strerror(errno));
		return 1;
	}

	r = server_listen(config.socket_path);
	if (r < 0) {
		if (r != -EADDRINUSE && r != -EEXIST && r != -ENOTSOCK)
			log_err("cannot listen on %s: %s", config.socket_path,
				strerror(-r));
		return 1;
	}
	if (!config.foreground && daemon(0, 1) < 0) {
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
	r = file_init(upaged.loop);
	if (r < 0) {
		log_err("io_uring: %s", strerror(-r));
		server_stop();
		return 1;
	}
	query_init(); /* uptime counts from here */
	ev_signal_init(&upaged.sigterm_w, main_signal_cb, SIGTERM);
	ev_signal_start(upaged.loop, &upaged.sigterm_w);
	ev_signal_init(&upaged.sigint_w, main_signal_cb, SIGINT);
	ev_signal_start(upaged.loop, &upaged.sigint_w);
	server_start();

	fprintf(stderr, "upaged: ready on %s\n", upaged.socket_path);
	fflush(stderr);
	service_ready();

	ev_run(upaged.loop, 0);

	/* Finish in-flight work: faults already queued get their pages. */
	service_stopping();
	server_stop();
	fault_drain_all();
	file_quiesce(); /* reads in flight reach their waiters */
	client_free_all();
	while (upaged.mms)
		umm_kill(upaged.mms, "daemon stopping");
	file_exit(); /* the write-backs those exits started, to the end */
	ev_timer_stop(upaged.loop, &upaged.reap_w);
	ev_idle_stop(upaged.loop, &upaged.retry_w);
	ev_signal_stop(upaged.loop, &upaged.sigterm_w);
	ev_signal_stop(upaged.loop, &upaged.sigint_w);
	ev_loop_destroy(upaged.loop);
	munmap(upaged.zero, upaged.cluster * PAGE_SIZE);
	log_info("stopped");
	return 0;
}
