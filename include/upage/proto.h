/*
 * proto.h - the wire protocol between upaged and its clients.
 *
 * Contract
 *
 * - Transport: a SOCK_SEQPACKET Unix socket, so one sendmsg() is one
 *   message and a message larger than UPAGE_MSG_MAX is seen as truncated.
 * - Every message starts with struct upage_hdr: protocol version, type,
 *   total length in bytes (header included) and a request id that the reply
 *   echoes. A request of type T is answered by a message of type
 *   T | UPAGE_MSG_REPLY.
 * - Each request has one fixed layout and its length must be exactly
 *   sizeof() that layout. At most one fd travels with a message (SCM_RIGHTS),
 *   and only with the types that say so below; any other fd is closed.
 * - Replies carry a negative errno (0 on success) and the results. A
 *   message with the wrong version is answered with -EPROTO (in a header of
 *   this side's version) and the connection is closed.
 * - Message types live in numbered blocks that are never renumbered: new
 *   types are appended to their block.
 * - All integers are in host byte order: both ends are on the same machine.
 *
 * Bump UPAGE_PROTO_VERSION if you change any struct or value in this file.
 */
#ifndef UPAGE_PROTO_H
#define UPAGE_PROTO_H

#include <stdint.h>

#define UPAGE_PROTO_VERSION 3 /* 3: memory budget figures in STATUS */
/* No message, request or reply, is larger than this. */
#define UPAGE_MSG_MAX 4096
/* Default socket; --socket PATH and $UPAGED_SOCKET override it. */
#define UPAGE_DEFAULT_SOCKET "/run/upaged/upaged.sock"

/* Message types. Bump the version if you change these. */
enum upage_msg_type {
	/* 0x00xx: session. */
	UPAGE_MSG_HELLO = 0x0001,   /* + the client's userfaultfd */
	UPAGE_MSG_PING = 0x0002,
	/* 0x01xx: address-space operations, mmap(2) and friends. */
	UPAGE_MSG_MAP = 0x0101,     /* + fd when not MAP_ANONYMOUS */
	UPAGE_MSG_UNMAP = 0x0102,
	UPAGE_MSG_PROTECT = 0x0103,
	UPAGE_MSG_REMAP = 0x0104,
	UPAGE_MSG_SYNC = 0x0105,
	UPAGE_MSG_ADVISE = 0x0106,
	/* 0x02xx: queries (upagectl); read-only. */
	UPAGE_MSG_STATS = 0x0201,
	UPAGE_MSG_STATUS = 0x0202,   /* daemon-wide figures, one reply */
	UPAGE_MSG_CLIENTS = 0x0203,  /* struct upage_query; listed reply */
	UPAGE_MSG_MAPS = 0x0204,     /* struct upage_query; listed reply */
	UPAGE_MSG_FILES = 0x0205,    /* struct upage_query; listed reply */
	/* who-maps: upagectl uses UPAGE_MSG_RMAP_QUERY (0x03xx). */
	/* 0x03xx: file-backed paging. */
	UPAGE_MSG_MAP_COMMIT = 0x0301, /* second step of a file MAP */
	UPAGE_MSG_RMAP_QUERY = 0x0302, /* + the file's fd */
};
#define UPAGE_MSG_REPLY 0x8000U

/* Every message begins with this. Bump the version if you change it. */
struct upage_hdr {
	uint16_t version; /* UPAGE_PROTO_VERSION */
	uint16_t type;    /* enum upage_msg_type, | UPAGE_MSG_REPLY */
	uint32_t len;     /* bytes, this header included */
	uint64_t id;      /* chosen by the client, echoed in the reply */
};

/* HELLO flags. */
#define UPAGE_HELLO_FORK_CHILD 0x1U /* no fd: bind to the mm the daemon
				       made at UFFD_EVENT_FORK */

/*
 * HELLO: carries the userfaultfd (after UFFDIO_API) unless FORK_CHILD.
 * The arena is the client's PROT_NONE reservation that the daemon lays out;
 * the two probe pages lie outside it (see lib/upage.c).
 */
struct upage_hello {
	struct upage_hdr hdr;
	uint32_t flags;        /* UPAGE_HELLO_* */
	uint32_t page_size;    /* the client's, must be 4096 */
	uint64_t features;     /* UFFD_FEATURE_* enabled by UFFDIO_API */
	uint64_t arena_base;   /* bytes, page aligned */
	uint64_t arena_size;   /* bytes, page aligned */
	uint64_t probe_addr;   /* two pages, outside the arena */
};

/* MAP: mmap(2). */
struct upage_map {
	struct upage_hdr hdr;
	uint64_t addr;   /* hint, or the address with MAP_FIXED* */
	uint64_t len;    /* bytes */
	uint64_t off;    /* bytes into the file */
	int32_t prot;    /* PROT_* */
	int32_t flags;   /* MAP_* */
};

/* UNMAP: munmap(2). */
struct upage_unmap {
	struct upage_hdr hdr;
	uint64_t addr;
	uint64_t len;
};

/* PROTECT: mprotect(2). */
struct upage_protect {
	struct upage_hdr hdr;
	uint64_t addr;
	uint64_t len;
	int32_t prot;
	uint32_t pad;
};

/* REMAP: mremap(2). */
struct upage_remap {
	struct upage_hdr hdr;
	uint64_t old_addr;
	uint64_t old_len;
	uint64_t new_len;
	uint64_t new_addr; /* with MREMAP_FIXED */
	int32_t flags;     /* MREMAP_* */
	uint32_t pad;
};

/* SYNC: msync(2). */
struct upage_sync {
	struct upage_hdr hdr;
	uint64_t addr;
	uint64_t len;
	int32_t flags; /* MS_* */
	uint32_t pad;
};

/* ADVISE: madvise(2). */
struct upage_advise {
	struct upage_hdr hdr;
	uint64_t addr;
	uint64_t len;
	int32_t advice; /* MADV_* */
	uint32_t pad;
};

/* PING, STATS, STATUS: the header alone. */

/* Reply to everything but STATS and the other queries (0x02xx). */
struct upage_reply {
	struct upage_hdr hdr;
	int32_t error;  /* 0 or -errno */
	int32_t prot;   /* REMAP: protection of the remapped VMA */
	uint64_t addr;  /* MAP, REMAP: the address; HELLO: cluster pages */
	uint64_t aux;   /* REMAP: UPAGE_REMAP_* (what the client does) */
};

/* REMAP reply: what the client does in its own address space. */
#define UPAGE_REMAP_MOVE 0   /* mremap(MAYMOVE|FIXED) to addr */
#define UPAGE_REMAP_GROW 1   /* tail registered: mprotect it to prot */
#define UPAGE_REMAP_SHRINK 2 /* give the tail back to the reservation */
/*
 * A file mapping that grows: MOVE (the old length only) or GROW, then the
 * reply's fd mapped over the tail [addr + old_len, addr + new_len) at file
 * offset UPAGE_REMAP_TAIL_OFF(aux), MAP_SHARED with UPAGE_REMAP_SHARED
 * (else MAP_PRIVATE), PROT_NONE; MAP_COMMIT of the tail; mprotect to prot.
 */
#define UPAGE_REMAP_FILE 0x10
#define UPAGE_REMAP_SHARED 0x20
#define UPAGE_REMAP_ACTION(aux) ((aux) & 0xf)
#define UPAGE_REMAP_TAIL_OFF(aux) ((aux) & ~0xfffULL)

/* Counters, per mm and for the whole daemon. */
struct upage_counters {
	uint64_t faults;        /* page-fault messages read */
	uint64_t faults_write;  /* of which write faults */
	uint64_t fill_pages;    /* pages installed */
	uint64_t fill_calls;    /* fill ioctls that installed something */
	uint64_t fill_eexist;   /* faults found already filled */
	uint64_t fill_eagain;   /* fills retried after an event */
	uint64_t wakes;         /* explicit UFFDIO_WAKEs */
	uint64_t ev_fork;
	uint64_t ev_remap;
	uint64_t ev_remove;
	uint64_t ev_unmap;
	uint64_t requests;      /* protocol requests handled */
	uint64_t bad_messages;  /* rejected on receipt */
};

/* STATS reply. */
struct upage_stats_reply {
	struct upage_hdr hdr;
	int32_t error;
	uint32_t clients;       /* connections */
	uint32_t mms;           /* address spaces (incl. unbound children) */
	int32_t pid;            /* this client's pid as the daemon sees it */
	uint64_t map_count;     /* this client's VMAs */
	uint64_t total_vm;      /* this client's mapped pages */
	uint64_t cluster;       /* pages per fill */
	struct upage_counters mm;     /* this client's mm */
	struct upage_counters global; /* everything since start */
};

/*
 * Queries (0x02xx) are read-only and need no HELLO: upagectl is not a
 * paging client. Who may see what: a peer with uid 0 sees every mm, any
 * other peer only the mms whose owner (the uid that said HELLO; fork
 * children inherit it) is its own uid. A mm the peer may not see is
 * -EACCES when named by pid and silently left out of lists.
 *
 * Listed replies (CLIENTS, MAPS, FILES) are paginated, so that
 * no reply exceeds UPAGE_MSG_MAX and the daemon never holds a half-sent
 * answer: each request returns the entries that sort after its cursor,
 * as many as fit, in one struct upage_list_reply followed by count
 * entries of entry_size bytes. The reply's cursor fields are what the
 * next request sends; UPAGE_LIST_END marks the last page. A request with
 * both cursors 0 starts from the beginning. Pages are consistent one by
 * one, not with each other (as reading /proc/PID/maps in pieces).
 *
 *   type      pid        order (cursor, cursor2)
 *   CLIENTS   0, or one  pid (pid of the last entry, 0)
 *   MAPS      the mm     address (vm_end of the last entry, 0)
 *   FILES     -          (dev, ino of the last entry)
 *
 * Errors: -ESRCH no mm with that pid, -EACCES not the peer's to see,
 * -EINVAL flags not 0.
 */
struct upage_query {
	struct upage_hdr hdr;
	int32_t pid;      /* MAPS: whose VMAs; CLIENTS: only this one (0: all) */
	uint32_t flags;   /* 0 */
	uint64_t cursor;  /* 0, or the previous reply's */
	uint64_t cursor2;
};

#define UPAGE_LIST_END 0x1U /* no more pages after this one */

struct upage_list_reply {
	struct upage_hdr hdr;
	int32_t error;       /* 0 or -errno; no entries with an error */
	uint16_t count;      /* entries that follow */
	uint16_t flags;      /* UPAGE_LIST_* */
	uint32_t entry_size; /* bytes per entry, sizeof() the entry type */
	uint32_t pad;
	uint64_t cursor;     /* send these back for the next page */
	uint64_t cursor2;
	/* count entries follow */
};

/* CLIENTS entry: one per process (mm) the peer may see. */
struct upage_client_entry {
	int32_t pid;
	uint32_t uid;            /* owner */
	char comm[16];           /* /proc/PID/comm, NUL-terminated */
	uint64_t map_count;      /* VMAs */
	uint64_t mapped_pages;   /* pages the VMAs cover */
	uint64_t resident_pages; /* the kernel's Rss of those VMAs;
				    UINT64_MAX: the kernel would not say */
	uint64_t faults;         /* page faults served */
	uint32_t connected;      /* 1: has a connection (0: fork child that
				    has not called the library) */
	uint32_t pad;
};

/* MAPS entry: one VMA, the fields of a /proc/PID/maps line. */
struct upage_map_entry {
	uint64_t start;     /* bytes, inclusive */
	uint64_t end;       /* bytes, exclusive */
	uint64_t offset;    /* bytes into the file; 0 when anonymous */
	uint64_t ino;
	uint32_t dev_major;
	uint32_t dev_minor;
	uint32_t vm_flags;  /* VM_* with the kernel's values */
	uint32_t pad;
	char path[256];     /* "" when anonymous, NUL-terminated */
};

/* FILES entry: one backing object. */
struct upage_file_entry {
	uint64_t dev;            /* st_dev */
	uint64_t ino;
	uint64_t size;           /* bytes */
	uint64_t resident_pages; /* in the daemon's page cache */
	uint64_t dirty_pages;
	uint32_t mappers;        /* processes mapping it (the peer may see) */
	uint32_t vmas;           /* VMAs mapping it (the peer may see) */
	char path[256];
};

/* STATUS: fault service time, log2 buckets: [2^i, 2^(i+1)) ns. */
#define UPAGE_LAT_BUCKETS 40

struct upage_status_reply {
	struct upage_hdr hdr;
	int32_t error;
	uint32_t proto_version;   /* UPAGE_PROTO_VERSION */
	char version[32];         /* the daemon's release, NUL-terminated */
	uint64_t uptime_ns;
	uint32_t clients;         /* connections */
	uint32_t mms;             /* processes (incl. unbound children) */
	uint64_t vmas;            /* over every mm */
	uint64_t mapped_pages;
	uint64_t objects;         /* backing objects */
	uint64_t resident_pages;  /* page cache of the objects */
	uint64_t dirty_pages;
	/* Faults by kind; those the daemon cannot classify are "other". */
	uint64_t faults;
	uint64_t faults_zero;     /* anonymous zero-fill */
	uint64_t faults_file;     /* file page absent: read from the file */
	uint64_t faults_cow;      /* write to a private file mapping */
	uint64_t faults_wp;       /* write-protect: page made dirty */
	uint64_t faults_minor;    /* file page resident or already being
				     read (readahead hit) */
	uint64_t faults_other;
	uint64_t lat_count;       /* faults timed */
	uint64_t lat_max_ns;
	uint64_t lat_sum_ns;
	uint64_t lat_hist[UPAGE_LAT_BUCKETS];
	/* I/O of the live objects. */
	uint64_t read_ios;
	uint64_t read_bytes;
	uint64_t ra_pages;        /* read ahead of a fault */
	uint64_t writeback_ios;
	uint64_t writeback_bytes;
	uint64_t evicted_pages;
	uint64_t io_errors;
	struct upage_counters global;
	/*
	 * Memory budget (--max-resident). resident_pages stays at most
	 * budget_pages plus reads in flight; eviction runs from there down
	 * to low_pages.
	 */
	uint64_t budget_pages;       /* 0: no budget */
	uint64_t low_pages;
	uint64_t resident_peak_pages; /* highest resident_pages seen */
	uint64_t evict_runs;         /* times the budget was enforced */
	uint64_t evict_writeback_pages; /* dirty victims written first */
	uint64_t evict_kept_pages;   /* victims kept: written again, busy */
	uint64_t refaults;           /* pages read again soon after eviction */
	uint64_t advised_pages;      /* pages read or dropped on MADV_* */
};

/*
 * File mappings (MAP without MAP_ANONYMOUS, with the file's fd) take two
 * steps. The MAP reply carries, with the address, the daemon's page cache
 * of the file (a memfd, SCM_RIGHTS; read-only unless the mapping may write
 * shared), at the file's own offsets, and in aux the mmap type to map it
 * with (MAP_SHARED, or MAP_PRIVATE: also for a shared mapping that can
 * never write, as the kernel registers only ranges that may be written).
 * The client maps it over its reservation at addr, PROT_NONE, MAP_FIXED
 * and that type, at the request's file offset, then sends MAP_COMMIT for
 * the same range: the daemon registers it with the userfaultfd, and the
 * client mprotects it to the asked protection. A range never committed is
 * unmapped as usual. Answered by struct upage_reply.
 */
struct upage_map_commit {
	struct upage_hdr hdr;
	uint64_t addr;   /* the MAP reply's address */
	uint64_t len;    /* bytes, as in the MAP request */
};

/*
 * RMAP_QUERY: who maps pages [first, first + npages) of the file whose fd
 * comes with the request. Needs no HELLO. A peer with uid 0 sees every
 * process, any other only processes of its own uid. One entry per VMA
 * part that maps the range (clipped to it), in the daemon's i_mmap order;
 * at most UPAGE_RMAP_MAX per reply: ask again with skip set to the entries
 * received so far while that is below total. A file no client maps gives
 * total 0.
 */
struct upage_rmap_query {
	struct upage_hdr hdr;
	uint64_t first;   /* pages into the file */
	uint64_t npages;  /* pages; 0: to the end of the file */
	uint64_t skip;    /* entries to leave out (pagination) */
};

struct upage_rmap_entry {
	int32_t pid;       /* 0: a fork child not yet known by its pid */
	int32_t prot;      /* PROT_* of the VMA */
	uint32_t vm_flags; /* VM_*, the kernel's values: 0x80 MAP_SHARED,
			      0x8 shared and may write */
	uint32_t pad;
	uint64_t start;    /* bytes, inclusive */
	uint64_t end;      /* bytes, exclusive */
	uint64_t pgoff;    /* file page that start maps */
};

/* Reply: the header, then count entries; hdr.len says the same. */
struct upage_rmap_reply {
	struct upage_hdr hdr;
	int32_t error;     /* 0 or -errno (then count is 0) */
	uint32_t count;    /* entries in this reply */
	uint64_t total;    /* entries in all */
	struct upage_rmap_entry entry[];
};

#define UPAGE_RMAP_MAX ((UPAGE_MSG_MAX - sizeof(struct upage_rmap_reply)) / \
			sizeof(struct upage_rmap_entry))

#endif
