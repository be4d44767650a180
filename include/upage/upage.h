/*
 * upage.h - libupage, the client library of upaged.
 *
 * Contract
 *
 * - upage_connect() opens a userfaultfd, reserves an arena of address space
 *   (PROT_NONE, MAP_NORESERVE) and hands both to the daemon. Every mapping
 *   made through upage_mmap() lies inside that arena, at a place the daemon
 *   chooses with its VMA engine, and its page faults are served by the daemon.
 *   Unmapped ranges go back to the reservation.
 * - The mmap-shaped calls behave like the libc calls they are named after,
 *   with the kernel's errno values: they return what the libc call returns
 *   (MAP_FAILED or -1 on error) and set errno. Ranges outside the arena are
 *   not the library's: EINVAL. upage_connect(), upage_disconnect() and
 *   upage_stats() return 0 or -errno and leave errno alone.
 * - Any call made before upage_connect() connects with the defaults.
 * - Thread-safe: one lock serialises requests of the process.
 * - After fork() the child is a separate client with a copy of the parent's
 *   mappings (copy-on-write, as the kernel does); its first call reconnects.
 * - The library never exits, aborts or prints in the host program. If the
 *   daemon goes away, calls fail with ENOTCONN and pages not yet touched read
 *   as zeroes (the kernel takes over once the userfaultfd is gone).
 * - Exported symbols are exactly the upage_* functions below.
 */
#ifndef UPAGE_UPAGE_H
#define UPAGE_UPAGE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <upage/proto.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Default arena: 64 GiB of address space (costs no memory). */
#define UPAGE_DEFAULT_ARENA (64UL << 30)

struct upage_options {
	const char *socket_path; /* NULL: $UPAGED_SOCKET, else the default */
	size_t arena_size;       /* bytes; 0: $UPAGE_ARENA_SIZE (bytes),
				    else UPAGE_DEFAULT_ARENA */
};

/*
 * Connects to the daemon. opts may be NULL. Returns 0, -EISCONN if already
 * connected, or -errno (-ENOENT/-ECONNREFUSED: no daemon; -EPERM: no
 * userfaultfd for this user; -EPROTO: daemon speaks another version).
 */
int upage_connect(const struct upage_options *opts);

/*
 * Closes the connection. The daemon forgets the mappings; their pages stay,
 * and pages never touched read as zeroes. The arena stays reserved.
 * Returns 0 or -ENOTCONN.
 */
int upage_disconnect(void);

/* mmap(2). Only MAP_PRIVATE|MAP_ANONYMOUS is served for now (else ENODEV). */
void *upage_mmap(void *addr, size_t len, int prot, int flags, int fd,
		 off_t off);
/* munmap(2). */
int upage_munmap(void *addr, size_t len);
/* mprotect(2). */
int upage_mprotect(void *addr, size_t len, int prot);
/* mremap(2); new_addr is read only with MREMAP_FIXED. */
void *upage_mremap(void *old_addr, size_t old_len, size_t new_len, int flags,
		   ... /* void *new_addr */);
/* msync(2). */
int upage_msync(void *addr, size_t len, int flags);
/* madvise(2). */
int upage_madvise(void *addr, size_t len, int advice);

/* Where the arena is; 0/-ENOTCONN. */
int upage_arena(void **base, size_t *size);

/* The daemon's counters for this process and overall; 0 or -errno. */
int upage_stats(struct upage_stats_reply *out);

#ifdef __cplusplus
}
#endif

#endif
