/*
 * log.c - the daemon's log: one line per message on stderr, prefixed
 * "upaged: ", filtered by level. Never used by the library.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "upaged.h"

int log_level = LOG_INFO;

static const char *const log_names[] = { "error", "warn", "info", "debug" };

int log_parse_level(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (!strcmp(s, log_names[i]))
			return i;
	return -1;
}

void log_msg(int level, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* One write per line so lines from a dying daemon are not torn. */
	fprintf(stderr, "upaged: %s%s\n", level == LOG_ERR ? "error: " :
		level == LOG_WARN ? "warning: " : "", buf);
}
