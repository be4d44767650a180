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

/*
 * UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_HUGETLBFS_SHMEM, and
 * UFFD_FEATURE_EVENT_FORK: without it a fork child's copy of a mapping
 * leaves the userfaultfd, and would write unseen.
 */
#define UPAGE_UFFD_WP_FEATURES ((1ULL << 0) | (1ULL << 12) | (1ULL << 1))

/* A fault whose fill met a pending event: retried once events are read. */
struct deferred_fault {
	unsigned long addr;
	unsigned int flags; /* FAULT_FLAG_* */
};

struct umm {
	struct mm_struct mm;
	pid_t pid;                /* 0 until bound (fork child) */
	uid_t uid;                /* owner: who said HELLO; fork inherits */
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
	unsigned long file_stray_addr; /* policy_file.c: repeated fault on */
	unsigned int file_stray_count; /* a page already in the cache */
	/* policy_file.c: do this process's random reads of a writable
	   shared mapping get written next (read-modify-write)? */
	unsigned long rmw_watched;     /* page last put in write-protected */
	bool rmw_watched_written;      /* its write came */
	unsigned int rmw_score;        /* 0..RMW_SCORE_MAX */
	unsigned int rmw_placed;       /* pages put in while predicting */
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

/* config.c: settings from /etc/upaged.conf and the command line. */
struct config {
	char socket_path[108]; /* sizeof(sun_path) */
	gid_t socket_gid;      /* (gid_t)-1: leave the socket's group alone */
	bool foreground;
	unsigned long max_resident_pages; /* page-cache budget, 0: none */
	bool huge_pages;  /* page cache in huge pages where it can be */
	char cache_dir[256]; /* tmpfs for the page cache, "": one of ours */
};
extern struct config config;
int config_init(int argc, char **argv);

/* service.c: systemd readiness, status and watchdog (no-ops without it). */
void service_ready(void);
void service_stopping(void);

/* server.c: takes a socket passed by systemd, else creates its own. */
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
int proto_reply_fd(int sock, const struct upage_hdr *req, int error,
		   uint64_t addr, int32_t prot, uint64_t aux, int fd);
void proto_reply(int sock, const struct upage_hdr *req, int error,
		 uint64_t addr, int32_t prot, uint64_t aux);

/* fault.c */
struct umm *umm_new(struct client *c, int uffd, uint64_t features,
		    unsigned long base, unsigned long size,
		    unsigned long probe);
void umm_bind(struct umm *m, pid_t tgid);
void umm_kill(struct umm *m, const char *why);
/* wp: also WP mode (tracked shared writable file mappings, see file.h). */
int fault_register(struct umm *m, unsigned long addr, unsigned long len,
		   bool wp);
/* Write-protects (wp) or unprotects [addr, addr + len); unprotect wakes. */
int fault_protect(struct umm *m, unsigned long addr, unsigned long len,
		  bool wp);
int fault_unregister(struct umm *m, unsigned long addr, unsigned long len);
void fault_init(void);
void fault_drain_all(void);
void fault_reap_unbound(void);
struct umm *fault_umm(const struct vm_fault *vmf);
void fault_wake(struct umm *u, unsigned long addr, unsigned long len);
void fault_poison(struct umm *u, unsigned long addr, unsigned long len);
/* Puts the page at data in at addr (UFFDIO_COPY); see fault.c. */
int fault_fill_page(struct umm *u, unsigned long addr, const void *data,
		    bool wp);
/* Fills [addr, addr + len) with zeroes; see fault.c. */
long fault_fill_zero(struct vm_fault *vmf, unsigned long addr,
		     unsigned long len);

/* query.c: upagectl's read-only queries, and the figures they report. */
void query_init(void);
/* Answers one checked query, STATUS..FILES (they carry no fd). */
void query_dispatch(struct client *c, const void *buf);
/* Fault kinds for the status counters; classify before serving. */
enum { QUERY_FAULT_ZERO, QUERY_FAULT_FILE, QUERY_FAULT_COW, QUERY_FAULT_WP,
       QUERY_FAULT_MINOR, QUERY_FAULT_OTHER };
int query_fault_kind(struct umm *u, unsigned long addr, unsigned int flags);
/* A fault of that kind was served; read_ns: when its message was read. */
void query_fault_done(int kind, uint64_t read_ns);

/* policy_anon.c */
extern const struct vm_operations_struct anon_vm_ops;
/* policy_shmem.c: anonymous shared memory, a memfd per mapping. */
extern const struct vm_operations_struct shm_vm_ops;
/* Places it for MAP_SHARED | MAP_ANONYMOUS; *memfd: what the client maps
   (the object keeps it). The address, or -errno. */
long shm_map(struct umm *u, const struct upage_map *m, int *memfd);
/* The memfd behind a shm_vm_ops VMA. */
int shm_memfd(const struct vm_area_struct *vma);
extern const struct vm_operations_struct hole_vm_ops;

/* policy_file.c (shared file mappings) and policy_cow.c (private ones). */
struct upage_map_commit;
struct upage_rmap_query;
extern const struct vm_operations_struct file_vm_ops;
extern const struct vm_operations_struct cow_vm_ops;
int file_init(struct ev_loop *loop);
void file_exit(void);
/* Threads wait for reads; file_wait(): reports finished I/O if any,
   waiting up to usec microseconds for some. */
bool file_waiting(void);
bool file_wait(unsigned long usec);
/* Sizes of files changed by others, as far as the kernel has told. */
void file_sync_sizes(void);
/* Runs every read and write-back in flight to its end. */
void file_quiesce(void);
void file_umm_gone(struct umm *u);
void file_client_gone(struct client *c);
int file_fault(struct vm_area_struct *vma, struct vm_fault *vmf);
void file_vma_open(struct vm_area_struct *vma);
void file_vma_close(struct vm_area_struct *vma);
/* Before unmap/mprotect/mremap of the range: write back what it wrote. */
void file_range_release(struct umm *u, unsigned long addr, unsigned long len);
/* MAP of a file: the address, *memfd gets the page cache to send. */
long file_map(struct umm *u, const struct upage_map *m, int fd, int *memfd,
	      int *how);
int file_commit(struct umm *u, const struct upage_map_commit *m);
/* What a client maps for file VMA vma: the object's memfd (*how
   MAP_SHARED) or its read-only one (MAP_PRIVATE); the object keeps it. */
int file_memfd(const struct vm_area_struct *vma, int *how);
/*
 * After the model's mprotect of [addr, addr + len) to writable, before the
 * client's: the shared file mappings there that write now are tracked
 * (file.h), from a write-protected start. 0 or -errno.
 */
int file_protect(struct umm *u, unsigned long addr, unsigned long len);
/* msync: 1 when the reply is sent later, else 0 or -errno. */
int file_sync(struct client *c, const struct upage_hdr *req,
	      unsigned long addr, unsigned long len, int flags);
void file_rmap_query(struct client *c, const struct upage_rmap_query *q,
		     int fd);

/* Can u's shared file mappings be write-protected (file.h: tracked)? */
static inline bool umm_tracks(const struct umm *u)
{
	return (u->features & UPAGE_UFFD_WP_FEATURES) ==
	       UPAGE_UFFD_WP_FEATURES;
}

/* u's mappings are untracked from now on: their pages count as written. */
static inline void umm_untrack(struct umm *u)
{
	u->features &= ~(uint64_t)(1ULL << 12);
}

static inline bool umm_range_ok(const struct umm *m, unsigned long addr,
				unsigned long len)
{
	return PAGE_ALIGNED(addr) && len && addr + len > addr &&
	       addr >= m->mm.mmap_base && addr + len <= m->mm.task_size;
}

#endif
