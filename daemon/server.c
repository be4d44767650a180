/*
 * server.c - the listening socket.
 *
 * Contract: server_listen() binds a SOCK_SEQPACKET Unix socket at path with
 * a umask that leaves it 0660, replacing a stale socket file left by a dead
 * daemon and refusing (-EADDRINUSE) when a live daemon answers on it, or
 * (-EEXIST) when the path is not a socket at all. server_start() watches it
 * on the loop; server_stop() stops accepting and removes the file.
 *
 * Socket activation: when systemd (or systemd-socket-activate) passes one
 * listening SOCK_SEQPACKET Unix socket (LISTEN_FDS), server_listen() takes
 * it instead and ignores path; the file then belongs to systemd and
 * server_stop() leaves it in place. Anything else passed is refused
 * (-ENOTSOCK, logged).
 * With config.socket_gid set, a socket we create is given that group, so
 * its members may connect (0660).
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "upaged.h"

static bool server_passed; /* the socket came from systemd */
static char server_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

/* Is somebody accepting on path? */
static bool server_path_alive(const struct sockaddr_un *sun)
{
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	bool alive;

	if (fd < 0)
		return true; /* cannot tell: do not remove it */
	alive = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0 ||
		(errno != ECONNREFUSED && errno != ENOENT);
	close(fd);
	return alive;
}

static void server_mkdir_parent(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return;
	*slash = '\0';
	/* Best effort, one level: /run/upaged under /run. */
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		log_warn("cannot create %s: %s", dir, strerror(errno));
}

/* Adopts the socket systemd passed as fd SD_LISTEN_FDS_START. */
static int server_adopt(int n)
{
	struct sockaddr_un sun;
	socklen_t len = sizeof(sun);
	int fd = SD_LISTEN_FDS_START, fl;

	if (n != 1) {
		log_err("socket activation passed %d sockets, expected one", n);
		return -ENOTSOCK;
	}
	if (sd_is_socket_unix(fd, SOCK_SEQPACKET, 1, NULL, 0) <= 0) {
		log_err("the passed socket is not a listening SOCK_SEQPACKET "
			"Unix socket (ListenSequentialPacket= in the unit)");
		return -ENOTSOCK;
	}
	memset(&sun, 0, sizeof(sun));
	if (getsockname(fd, (struct sockaddr *)&sun, &len) < 0)
		return -errno;
	if (len <= offsetof(struct sockaddr_un, sun_path) || !sun.sun_path[0])
		strcpy(server_path, "(unnamed socket)");
	else
		snprintf(server_path, sizeof(server_path), "%.*s",
			 (int)(len - offsetof(struct sockaddr_un, sun_path)),
			 sun.sun_path);
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return -errno;
	server_passed = true;
	upaged.listen_fd = fd;
	upaged.socket_path = server_path;
	log_info("using the socket passed by systemd: %s", server_path);
	return 0;
}

int server_listen(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t old;
	int fd, r;

	/* unset_environment: clients we might start must not see it. */
	r = sd_listen_fds(1);
	if (r < 0) {
		log_err("LISTEN_FDS: %s", strerror(-r));
		return r;
	}
	if (r > 0)
		return server_adopt(r);
	if (strlen(path) >= sizeof(sun.sun_path)) {
		log_err("socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	strcpy(sun.sun_path, path);
	server_mkdir_parent(path);

	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	for (int tries = 0;; tries++) {
		old = umask(0117);
		r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
		umask(old);
		if (r == 0)
			break;
		r = -errno;
		if (r != -EADDRINUSE || tries > 0)
			goto fail;
		if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
			log_err("%s exists and is not a socket", path);
			r = -EEXIST;
			goto fail;
		}
		if (server_path_alive(&sun)) {
			log_err("another upaged is listening on %s", path);
			goto fail;
		}
		log_info("replacing stale socket %s", path);
		if (unlink(path) < 0 && errno != ENOENT) {
			r = -errno;
			goto fail;
		}
	}
	if (config.socket_gid != (gid_t)-1 &&
	    chown(path, (uid_t)-1, config.socket_gid) < 0) {
		r = -errno;
		log_err("cannot give %s to group %u: %s", path,
			(unsigned int)config.socket_gid, strerror(errno));
		unlink(path);
		goto fail;
	}
	if (listen(fd, 128) < 0) {
		r = -errno;
		unlink(path);
		goto fail;
	}
	upaged.listen_fd = fd;
	snprintf(server_path, sizeof(server_path), "%s", path);
	upaged.socket_path = server_path;
	return 0;
fail:
	close(fd);
	return r;
}

static void server_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	/* Accept what is queued, a bounded batch per wake-up for fairness. */
	for (int i = 0; i < 64; i++) {
		int fd = accept4(upaged.listen_fd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				log_warn("accept: %s", strerror(errno));
			return;
		}
		client_accept(fd);
	}
}

void server_start(void)
{
	ev_io_init(&upaged.listen_w, server_accept_cb, upaged.listen_fd,
		   EV_READ);
	ev_io_start(upaged.loop, &upaged.listen_w);
}

void server_stop(void)
{
	if (upaged.listen_fd < 0)
		return;
	ev_io_stop(upaged.loop, &upaged.listen_w);
	close(upaged.listen_fd);
	upaged.listen_fd = -1;
	if (!server_passed)
		unlink(upaged.socket_path);
}
