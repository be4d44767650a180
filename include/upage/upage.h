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

/*
 * mmap(2). Anonymous private memory, and files: fd is opened by the
 * caller (its access mode limits the protection, as with mmap), the
 * daemon keeps one page cache per file shared by every process, MAP_SHARED
 * writes reach the file on upage_msync(), unmap and exit, MAP_PRIVATE
 * writes stay private. Anonymous MAP_SHARED: ENODEV (not yet).
 */
void *upage_mmap(void *addr, size_t len, int prot, int flags, int fd,
		 off_t off);
/* munmap(2). */
int upage_munmap(void *addr, size_t len);
/* mprotect(2). */
int upage_mprotect(void *addr, size_t len, int prot);
/*
 * mremap(2); new_addr is read only with MREMAP_FIXED. MREMAP_DONTUNMAP
 * works for anonymous mappings (the source stays mapped, empty); on a file
 * mapping it fails with EOPNOTSUPP, as does growing a file mapping.
 */
void *upage_mremap(void *old_addr, size_t old_len, size_t new_len, int flags,
		   ... /* void *new_addr */);
/*
 * msync(2). MS_INVALIDATE alone (no MS_SYNC/MS_ASYNC): the files mapped
 * there changed behind the daemon's page cache (a write(2)); it reads its
 * clean copies of those pages again, for every process that maps them.
 */
int upage_msync(void *addr, size_t len, int flags);
/* madvise(2). */
int upage_madvise(void *addr, size_t len, int advice);

/*
 * Reverse map: who maps pages [first, first + npages) (0: to the end) of
 * the file open as fd. Fills out[] with up to max entries (struct
 * upage_rmap_entry, see proto.h), *total (may be NULL) gets how many
 * there are. Returns the entries filled, or -errno. Root sees every
 * process, others their own uid's.
 */
int upage_rmap_query(int fd, uint64_t first, uint64_t npages,
		     struct upage_rmap_entry *out, size_t max, size_t *total);

/* Where the arena is; 0/-ENOTCONN. */
int upage_arena(void **base, size_t *size);

/* The daemon's counters for this process and overall; 0 or -errno. */
int upage_stats(struct upage_stats_reply *out);

/* Kinds of userfaultfd; see upage_uffd_kind(). */
enum upage_uffd_kind {
	UPAGE_UFFD_NONE = 0,      /* never returned by upage_uffd_kind() */
	UPAGE_UFFD_FULL = 1,      /* every fault is served */
	UPAGE_UFFD_USER_ONLY = 2, /* UFFD_USER_MODE_ONLY: a fault taken inside
				     the kernel (read(2) into a mapping) fails
				     with EFAULT instead of being served */
};

/*
 * The kind of userfaultfd this process uses (while connected) or would get
 * (otherwise): the library takes /dev/userfaultfd (or $UPAGE_USERFAULTFD_DEV)
 * if it may open it (root, or group upage as installed), else the
 * userfaultfd system call, else the system call in user-mode-only mode.
 * Returns an enum upage_uffd_kind, or -errno when none can be had (and
 * upage_connect() fails the same way): -EPERM no access to the device and
 * the system call refused; -ENOSYS the kernel has no userfaultfd;
 * -EOPNOTSUPP it lacks the event features upaged needs.
 * Whatever the kind, the kernel reports fork to the daemon only for a
 * process with CAP_SYS_PTRACE: an unprivileged client's fork children are
 * not clients (their upage_* calls fail with ENOTCONN; the copies of the
 * mappings they inherited behave as the kernel's own private memory).
 */
int upage_uffd_kind(void);

/* A sentence explaining a kind or an error of upage_uffd_kind(). */
const char *upage_uffd_explain(int kind);

#ifdef __cplusplus
}
#endif

#endif
