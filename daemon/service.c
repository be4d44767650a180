/*
 * service.c - upaged as a systemd service: readiness, status, watchdog.
 *
 * Contract
 *
 * - service_ready() tells the service manager READY=1 with a STATUS= line,
 *   once the socket accepts connections. Without $NOTIFY_SOCKET every call
 *   here does nothing.
 * - With a watchdog ($WATCHDOG_USEC, for our pid when $WATCHDOG_PID is
 *   set), a timer on the loop sends WATCHDOG=1 at half the period, so a
 *   loop stuck for longer gets the daemon restarted. The same tick renews
 *   STATUS= (clients, faults); without a watchdog it runs every 10 s.
 *   Pinging from the loop, not from a thread, is the point: it proves the
 *   loop still turns.
 * - service_stopping() sends STOPPING=1 and stops the timer.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <systemd/sd-daemon.h>

#include "upaged.h"

static ev_timer service_w;
static bool service_watchdog;

static void service_status(const char *state)
{
	sd_notifyf(0, "STATUS=%s on %s: %u clients, %u address spaces, "
		   "%" PRIu64 " faults", state, upaged.socket_path,
		   upaged.nclients, upaged.nmms, upaged.cnt.faults);
}

static void service_tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	if (service_watchdog)
		sd_notify(0, "WATCHDOG=1");
	service_status("serving");
}

void service_ready(void)
{
	uint64_t usec = 0;
	double period = 10.0;
	const char *ns = getenv("NOTIFY_SOCKET");

	if (!ns || !*ns)
		return;
	if (sd_watchdog_enabled(0, &usec) > 0 && usec) {
		service_watchdog = true;
		period = (double)usec / 2e6;
		log_info("watchdog: pinging every %.3f s", period);
	}
	sd_notifyf(0, "READY=1\nSTATUS=serving on %s: 0 clients",
		   upaged.socket_path);
	ev_timer_init(&service_w, service_tick_cb, period, period);
	ev_timer_start(upaged.loop, &service_w);
}

void service_stopping(void)
{
	const char *ns = getenv("NOTIFY_SOCKET");

	if (!ns || !*ns)
		return;
	ev_timer_stop(upaged.loop, &service_w);
	service_status("stopping");
	sd_notify(0, "STOPPING=1");
}
