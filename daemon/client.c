/*
 * client.c - one connection: its identity, and the requests it makes.
 *
 * Contract: client_accept() takes a connected socket, learns the peer from
 * SO_PEERCRED and watches it. Each request is checked by proto_check(),
 * applied to the client's model first (the VMA engine), with the
 * userfaultfd registration the daemon does itself, and answered; the
 * library then makes the client's address space agree (see lib/upage.c).
 * A bad message gets an error reply, or the connection is dropped; a closed
 * connection frees the client's mm.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "file.h"

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

static void client_read_cb(struct ev_loop *loop, ev_io *w, int revents);

void client_accept(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct client *c;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		close(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->fd = fd;
	c->pid = cred.pid;
	c->uid = cred.uid;
	c->gid = cred.gid;
	c->next = upaged.clients;
	if (c->next)
		c->next->prev = c;
	upaged.clients = c;
	upaged.nclients++;
	ev_io_init(&c->w, client_read_cb, fd, EV_READ);
	c->w.data = c;
	ev_io_start(upaged.loop, &c->w);
	log_debug("client pid %d uid %u connected", c->pid, c->uid);
}

void client_free(struct client *c, const char *why)
{
	log_debug("client pid %d: %s", c->pid, why);
	file_client_gone(c);
	ev_io_stop(upaged.loop, &c->w);
	close(c->fd);
	if (c->umm) {
		c->umm->client = NULL;
		umm_kill(c->umm, why);
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		upaged.clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	upaged.nclients--;
	free(c);
}

void client_free_all(void)
{
	while (upaged.clients)
		client_free(upaged.clients, "daemon stopping");
}

static int prot_of(unsigned int vm_flags)
{
	return ((vm_flags & VM_READ) ? PROT_READ : 0) |
	       ((vm_flags & VM_WRITE) ? PROT_WRITE : 0) |
	       ((vm_flags & VM_EXEC) ? PROT_EXEC : 0);
}

/* Takes fd (the userfaultfd, or -1) whatever happens. */
static int client_hello(struct client *c, const struct upage_hello *m,
			int fd)
{
	struct umm *u;
	int r = 0;

	if (c->umm)
		r = -EISCONN;
	else if (m->page_size != PAGE_SIZE)
		r = -EINVAL;
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		return r;
	}
	if (m->flags & UPAGE_HELLO_FORK_CHILD) {
		/* The child read its probe page first, so the mm it got at
		   UFFD_EVENT_FORK is bound to its pid by now. */
		for (u = upaged.mms; u; u = u->next)
			if (u->pid == c->pid && !u->client)
				break;
		if (!u)
			return -ESRCH;
		u->client = c;
		c->umm = u;
		return 0;
	}
	if (m->flags || !PAGE_ALIGNED(m->arena_base) ||
	    !PAGE_ALIGNED(m->arena_size) || !PAGE_ALIGNED(m->probe_addr) ||
	    !m->arena_size || m->arena_base + m->arena_size < m->arena_base ||
	    m->arena_base < PAGE_SIZE ||
	    (m->probe_addr + 2 * PAGE_SIZE > m->arena_base &&
	     m->probe_addr < m->arena_base + m->arena_size)) {
		close(fd);
		return -EINVAL;
	}
	/* Register the probe page before anything watches fd: a file that
	   is not a userfaultfd (of some process) fails here, harmlessly. */
	struct uffdio_register reg = {
		.range = { .start = m->probe_addr, .len = PAGE_SIZE },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	if (ioctl(fd, UFFDIO_REGISTER, &reg) < 0) {
		close(fd);
		return -EBADF;
	}
	u = umm_new(NULL, fd, m->features, m->arena_base, m->arena_size,
		    m->probe_addr);
	if (!u) {
		close(fd);
		return -ENOMEM;
	}
	u->client = c;
	u->uid = c->uid;
	umm_bind(u, c->pid);
	c->umm = u;
	return 0;
}

/* Takes nothing: fd stays the caller's; *memfd is the object's. */
static long client_map(struct umm *u, const struct upage_map *m, int fd,
		       int *memfd, int *how)
{
	struct vm_area_struct *vma;
	struct mmap_req req;
	unsigned long len = PAGE_ALIGN(m->len);
	long addr;
	int r;

	if (!m->len || len < m->len)
		return -EINVAL;
	if ((m->flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) &&
	    !umm_range_ok(u, m->addr, len))
		return -EINVAL;
	if (!(m->flags & MAP_ANONYMOUS))
		return file_map(u, m, fd, memfd, how); /* registered at commit */
	if ((m->flags & MAP_TYPE) != MAP_PRIVATE) {
		*how = MAP_SHARED;
		return shm_map(u, m, memfd);
	}
	memset(&req, 0, sizeof(req));
	req.addr = m->addr;
	req.len = len;
	req.prot = m->prot;
	req.flags = m->flags;
	req.ops = &anon_vm_ops;
	req.fmode = MAP_FMODE_READ | MAP_FMODE_WRITE | MAP_FMODE_EXEC;
	addr = do_mmap(&u->mm, &req, &vma);
	if (addr < 0)
		return addr;
	r = fault_register(u, addr, len, false);
	if (r < 0) {
		do_munmap(&u->mm, addr, len);
		return r;
	}
	return addr;
}

/* After do_mremap() to r: the VMA of a file mapping that grew, or NULL. */
static struct vm_area_struct *grown_file_vma(struct umm *u, long r,
					     unsigned long old_len,
					     unsigned long new_len)
{
	struct vm_area_struct *vma;

	if (new_len <= old_len)
		return NULL;
	vma = find_vma(&u->mm, (unsigned long)r + old_len);
	return vma && vma->vm_file ? vma : NULL;
}

/* What the client maps over a grown tail of vma; *how: shared or not. */
static int remap_memfd(const struct vm_area_struct *vma, int *how)
{
	if (vma->vm_ops == &shm_vm_ops) {
		*how = MAP_SHARED;
		return shm_memfd(vma);
	}
	return file_memfd(vma, how);
}

static int client_remap(struct umm *u, const struct upage_remap *m,
			uint64_t *addr, int32_t *prot, uint64_t *action,
			int *memfd)
{
	unsigned long old_len = PAGE_ALIGN(m->old_len);
	unsigned long new_len = PAGE_ALIGN(m->new_len);
	struct vm_area_struct *vma;
	long r;

	if (m->flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP))
		return -EINVAL;
	if (!new_len || new_len < m->new_len || old_len < m->old_len ||
	    !umm_range_ok(u, m->old_addr, old_len ? old_len : PAGE_SIZE))
		return -EINVAL;
	if ((m->flags & MREMAP_FIXED) &&
	    !umm_range_ok(u, m->new_addr, new_len))
		return -EINVAL;
	vma = find_vma(&u->mm, m->old_addr);
	if (!vma || vma->vm_start > m->old_addr)
		return -EFAULT;
	/* Keeping the source of a file mapping: not yet. */
	if (vma->vm_file && (m->flags & MREMAP_DONTUNMAP))
		return -EOPNOTSUPP;
	*prot = prot_of(vma->vm_flags);
	file_range_release(u, m->old_addr, old_len);
	r = do_mremap(&u->mm, m->old_addr, old_len, new_len, m->flags,
		      m->new_addr);
	if (r < 0)
		return (int)r;
	*addr = r;
	vma = grown_file_vma(u, r, old_len, new_len);
	if (vma) {
		/* The tail is the page cache mapped anew, registered at
		   its commit (proto.h). */
		int how;

		*memfd = remap_memfd(vma, &how);
		*action = ((unsigned long)r != m->old_addr ? UPAGE_REMAP_MOVE
							   : UPAGE_REMAP_GROW) |
			  UPAGE_REMAP_FILE |
			  (how == MAP_SHARED ? UPAGE_REMAP_SHARED : 0) |
			  ((uint64_t)vma_pgoff_at(vma, (unsigned long)r +
							     old_len)
			   << PAGE_SHIFT);
		return 0;
	}
	if ((unsigned long)r != m->old_addr) {
		*action = UPAGE_REMAP_MOVE; /* registration moves with it */
		return 0;
	}
	if (new_len > old_len) {
		*action = UPAGE_REMAP_GROW;
		r = fault_register(u, m->old_addr + old_len, new_len - old_len,
				   false);
		if (r < 0) {
			do_mremap(&u->mm, m->old_addr, new_len, old_len, 0, 0);
			return (int)r;
		}
	} else {
		*action = UPAGE_REMAP_SHRINK;
	}
	return 0;
}

/* msync(2): checks, then file write-back (1: the reply comes later). */
static int client_sync(struct client *c, const struct upage_sync *m)
{
	struct umm *u = c->umm;
	unsigned long len = PAGE_ALIGN(m->len);
	unsigned long a = m->addr, end = m->addr + len;
	struct vm_area_struct *vma;

	if ((m->flags & ~(MS_ASYNC | MS_SYNC | MS_INVALIDATE)) ||
	    ((m->flags & MS_ASYNC) && (m->flags & MS_SYNC)) ||
	    !PAGE_ALIGNED(m->addr) || len < m->len)
		return -EINVAL;
	if (!len)
		return 0;
	if (!umm_range_ok(u, m->addr, len))
		return -EINVAL;
	while (a < end) {
		vma = find_vma(&u->mm, a);
		if (!vma || vma->vm_start > a || vma->vm_ops == &hole_vm_ops)
			return -ENOMEM;
		a = vma->vm_end;
	}
	return file_sync(c, &m->hdr, m->addr, len, m->flags);
}

static void client_stats(struct client *c, const struct upage_hdr *h)
{
	struct upage_stats_reply r;

	memset(&r, 0, sizeof(r));
	r.hdr.version = UPAGE_PROTO_VERSION;
	r.hdr.type = h->type | UPAGE_MSG_REPLY;
	r.hdr.len = sizeof(r);
	r.hdr.id = h->id;
	r.clients = upaged.nclients;
	r.mms = upaged.nmms;
	r.pid = c->pid;
	r.cluster = upaged.cluster;
	r.global = upaged.cnt;
	if (c->umm) {
		r.pid = c->umm->pid;
		r.map_count = c->umm->mm.map_count;
		r.total_vm = c->umm->mm.total_vm;
		r.mm = c->umm->cnt;
	}
	proto_send(c->fd, &r, sizeof(r));
}

/* Handles one checked message; fd (if any) is ours. */
static void client_dispatch(struct client *c, const void *buf, int fd)
{
	const struct upage_hdr *h = buf;
	struct umm *u = c->umm;
	uint64_t addr = 0, aux = 0;
	int32_t prot = 0, memfd = -1, how = 0;
	long r = 0;

	upaged.cnt.requests++;
	if (u)
		u->cnt.requests++;
	switch (h->type) {
	case UPAGE_MSG_PING:
		break;
	case UPAGE_MSG_STATS:
		client_stats(c, h);
		return;
	case UPAGE_MSG_RMAP_QUERY:
		file_rmap_query(c, buf, fd); /* no HELLO needed: read-only */
		return;
	case UPAGE_MSG_STATUS:
	case UPAGE_MSG_CLIENTS:
	case UPAGE_MSG_MAPS:
	case UPAGE_MSG_FILES:
		query_dispatch(c, buf); /* no HELLO needed: read-only */
		return;
	case UPAGE_MSG_HELLO:
		r = client_hello(c, buf, fd);
		fd = -1;
		addr = upaged.cluster;
		break;
	default:
		if (!u) {
			r = -ENOTCONN;
			break;
		}
		switch (h->type) {
		case UPAGE_MSG_MAP:
			r = client_map(u, buf, fd, &memfd, &how);
			if (r >= 0) {
				addr = r;
				aux = (uint64_t)how; /* with the memfd */
				r = 0;
			}
			break;
		case UPAGE_MSG_UNMAP: {
			const struct upage_unmap *m = buf;
			unsigned long len = PAGE_ALIGN(m->len);

			if (!umm_range_ok(u, m->addr, len) || len < m->len) {
				r = -EINVAL;
			} else {
				file_range_release(u, m->addr, len);
				r = do_munmap(&u->mm, m->addr, len);
			}
			break;
		}
		case UPAGE_MSG_PROTECT: {
			const struct upage_protect *m = buf;
			unsigned long len = PAGE_ALIGN(m->len);

			if (!umm_range_ok(u, m->addr, len) || len < m->len) {
				r = -EINVAL;
			} else {
				file_range_release(u, m->addr, len);
				r = do_mprotect(&u->mm, m->addr, len, m->prot);
				if (r == 0 && (m->prot & PROT_WRITE))
					r = file_protect(u, m->addr, len);
			}
			break;
		}
		case UPAGE_MSG_REMAP:
			r = client_remap(u, buf, &addr, &prot, &aux, &memfd);
			break;
		case UPAGE_MSG_SYNC:
			r = client_sync(c, buf);
			if (r == 1)
				return; /* file_sync() replies */
			break;
		case UPAGE_MSG_MAP_COMMIT:
			r = file_commit(u, buf);
			break;
		case UPAGE_MSG_ADVISE: {
			const struct upage_advise *m = buf;
			unsigned long len = PAGE_ALIGN(m->len);

			if (!umm_range_ok(u, m->addr, len) || len < m->len)
				r = -EINVAL;
			else
				r = do_madvise(&u->mm, m->addr, len,
					       m->advice);
			/* Like the kernel, what is mapped gets the advice
			   even where part of the range is not (ENOMEM). */
			if (r == 0 || r == -ENOMEM) {
				int e = reclaim_advise(u, m->addr, len,
						       m->advice);

				if (e < 0)
					r = e;
			}
			break;
		}
		}
	}
	if (fd >= 0)
		close(fd); /* a backing object keeps its own duplicate */
#ifdef UPAGED_DEBUG_VM
	if (c->umm && validate_mm(&c->umm->mm))
		abort();
#endif
	if (memfd >= 0 && r == 0)
		proto_reply_fd(c->fd, h, 0, addr, prot, aux, memfd);
	else
		proto_reply(c->fd, h, (int)r, addr, prot, aux);
}

static void client_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct client *c = w->data;
	/* One spare byte beyond the maximum so oversize shows as MSG_TRUNC. */
	uint64_t buf[UPAGE_MSG_MAX / 8 + 1];
	bool synced = false;

	for (int i = 0; i < 16; i++) {
		int fd, nfds, r;
		bool drop;
		ssize_t n;

		n = proto_recv(c->fd, buf, sizeof(buf), &fd, &nfds);
		if (n == -EAGAIN)
			return;
		if (n == 0 || n == -ECONNRESET) {
			client_free(c, "connection closed");
			return;
		}
		if (n < 0 || n > UPAGE_MSG_MAX) {
			/* Oversized (MSG_TRUNC) or over UPAGE_MSG_MAX: no
			   layout to trust; its header is all we answer. */
			struct upage_hdr h = { .type = 0 };

			if (fd >= 0)
				close(fd);
			upaged.cnt.bad_messages++;
			if (n == -EMSGSIZE || n > UPAGE_MSG_MAX) {
				memcpy(&h, buf, sizeof(h));
				proto_reply(c->fd, &h, -EMSGSIZE, 0, 0, 0);
				continue;
			}
			client_free(c, "receive error");
			return;
		}
		r = proto_check(buf, n, nfds, &drop);
		if (r < 0) {
			struct upage_hdr h = { .type = 0 };

			if (fd >= 0)
				close(fd);
			upaged.cnt.bad_messages++;
			log_debug("client pid %d: bad message: %s", c->pid,
				  strerror(-r));
			if ((size_t)n >= sizeof(h))
				memcpy(&h, buf, sizeof(h));
			proto_reply(c->fd, &h, r, 0, 0, 0);
			if (drop) {
				client_free(c, "bad message");
				return;
			}
			continue;
		}
		/* What a client did to a file before it asked is known
		   when the answer comes (a truncation's lost pages). */
		if (!synced) {
			file_sync_sizes();
			synced = true;
		}
		client_dispatch(c, buf, fd);
	}
}
