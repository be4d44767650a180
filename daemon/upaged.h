/*
 * upaged.h - the daemon's shared state: clients, their address spaces and
 * the loop that serves them.
 *
 * Contract
 *
 * - One thread, one libev loop (upaged.loop) owns everything here.
 * - A struct client is one connection; a struct umm is one client process's
 *   address space (the engine's mm_struct plus its userfaultfd, pidfd and
 *   counters). A umm outlives its connection only while it waits for a
 *   forked child to say hello; umm_kill() frees it and everything it holds.
 * - Functions named umm_kill(), client_free() may free their argument: callers must not
 *   touch it afterwards.
 */
#ifndef UPAGED_UPAGED_H
#define UPAGED_UPAGED_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <ev.h>

#include <upage/proto.h>

#include "vma.h"

struct client;

/* A fault whose fill met a pending event: retried once events are read. */
struct deferred_fault {
	unsigned long addr;
	unsigned int flags; /* FAULT_FLAG_* */
};

struct umm {
	struct mm_struct mm;
	pid_t pid;                /* 0 until bound (fork child) */
	int pidfd;                /* -1 until bound */
	int uffd;
	uint64_t features;        /* UFFD_FEATURE_* the client enabled */
	unsigned long probe_addr; /* two pages below the arena */
	ev_io uffd_w;
	ev_io pidfd_w;
	struct client *client;    /* NULL: no connection (yet) */
	struct deferred_fault *deferred;
	size_t ndeferred, deferred_cap;
	struct upage_counters cnt;
	struct umm *next, *prev;  /* upaged.mms */
};

struct client {
	int fd;
	ev_io w;
	pid_t pid; /* SO_PEERCRED */
	uid_t uid;
	gid_t gid;
	struct umm *umm; /* after HELLO */
	struct client *next, *prev; /* upaged.clients */
};

struct upaged {
	struct ev_loop *loop;
	const char *socket_path;
	int listen_fd;
	ev_io listen_w;
	ev_signal sigterm_w, sigint_w;
	ev_timer reap_w;     /* liveness of unbound fork children */
	ev_idle retry_w;     /* deferred faults pending */
	unsigned long cluster; /* pages per fill */
	uint64_t spin_ns;      /* poll a busy uffd this long (0: never) */
	struct client *clients;
	struct umm *mms;
	unsigned int nclients, nmms;
	struct upage_counters cnt;
	void *zero;          /* cluster pages of zeroes, UFFDIO_COPY source */
	bool stopping;
};

extern struct upaged upaged;

/* log.c */
enum { LOG_ERR, LOG_WARN, LOG_INFO, LOG_DEBUG };
extern int log_level;
int log_parse_level(const char *s);
void log_msg(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) \
	do { if (log_level >= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

/* server.c */
int server_listen(const char *path);
void server_start(void);
void server_stop(void);

/* client.c */
void client_accept(int fd);
void client_free(struct client *c, const char *why);
void client_free_all(void);

/* proto.c */
ssize_t proto_recv(int sock, void *buf, size_t size, int *fd, int *nfds);
int proto_check(const void *buf, size_t n, int nfds, bool *drop);
int proto_send(int sock, const void *msg, size_t len);
void proto_reply(int sock, const struct upage_hdr *req, int error,
		 uint64_t addr, int32_t prot, uint64_t aux);

/* fault.c */
struct umm *umm_new(struct client *c, int uffd, uint64_t features,
		    unsigned long base, unsigned long size,
		    unsigned long probe);
void umm_bind(struct umm *m, pid_t tgid);
void umm_kill(struct umm *m, const char *why);
int fault_register(struct umm *m, unsigned long addr, unsigned long len);
int fault_unregister(struct umm *m, unsigned long addr, unsigned long len);
void fault_init(void);
void fault_drain_all(void);
void fault_reap_unbound(void);
/* Fills [addr, addr + len) with zeroes; see fault.c. */
long fault_fill_zero(struct vm_fault *vmf, unsigned long addr,
		     unsigned long len);

/* policy_anon.c */
extern const struct vm_operations_struct anon_vm_ops;
extern const struct vm_operations_struct hole_vm_ops;

static inline bool umm_range_ok(const struct umm *m, unsigned long addr,
				unsigned long len)
{
	return PAGE_ALIGNED(addr) && len && addr + len > addr &&
	       addr >= m->mm.mmap_base && addr + len <= m->mm.task_size;
}

#endif
