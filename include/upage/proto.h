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

#define UPAGE_PROTO_VERSION 1
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
	/* 0x03xx: file-backed paging (reserved for later issues). */
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

/* PING, STATS: the header alone. */

/* Reply to everything but STATS. */
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

#endif
