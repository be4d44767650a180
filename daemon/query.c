/*
 * query.c - upagectl's read-only queries (the 0x02xx block): status,
 * clients, maps, files; and the figures only they report (fault kinds,
 * the fault service time histogram, uptime). who-maps is RMAP_QUERY,
 * answered by policy_file.c.
 *
 * Contract
 *
 * - Answers from the daemon's own model and counters, plus the two things
 *   only the kernel knows about a client: its command name
 *   (/proc/PID/comm) and how much of its managed memory is resident
 *   (/proc/PID/smaps, read for the CLIENTS list only). Nothing here changes
 *   the model or any client.
 * - Cheap and bounded: STATUS is O(processes + objects); a list page is
 *   O(what it looks at) and never blocks, since one request gets exactly
 *   one reply of at most UPAGE_MSG_MAX bytes (see proto.h on pagination).
 * - Who may see what is decided here, from SO_PEERCRED: uid 0 sees every
 *   mm, any other uid only the mms it owns (struct umm.uid).
 * - query_fault_kind()/query_fault_done() are called by fault.c around
 *   every page fault it serves: a clock read, a cached find_vma(), no
 *   allocation.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "file.h"

#ifndef UPAGED_VERSION
#define UPAGED_VERSION "0.1.0"
#endif

#define QUERY_NKINDS (QUERY_FAULT_OTHER + 1)

static struct {
	uint64_t start_ns;
	uint64_t kinds[QUERY_NKINDS];
	uint64_t lat_hist[UPAGE_LAT_BUCKETS];
	uint64_t lat_count, lat_max, lat_sum;
} q;

static uint64_t query_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void query_init(void)
{
	q.start_ns = query_now_ns();
}

/* The backing object of a file VMA (policy_file.c, policy_cow.c), or
   NULL: only theirs have one. */
static struct backing *query_backing(const struct vm_area_struct *vma)
{
	if (!vma->vm_file || (vma->vm_ops != &file_vm_ops &&
			      vma->vm_ops != &cow_vm_ops))
		return NULL;
	return container_of(vma->vm_file, struct backing, as);
}

static struct umm *query_umm(struct mm_struct *mm)
{
	return container_of(mm, struct umm, mm);
}

int query_fault_kind(struct umm *u, unsigned long addr, unsigned int flags)
{
	struct vm_area_struct *vma;
	struct backing *b;
	unsigned long pgoff;

	if (flags & FAULT_FLAG_WP)
		return QUERY_FAULT_WP;
	vma = find_vma(&u->mm, addr);
	if (!vma || vma->vm_start > addr)
		return QUERY_FAULT_ZERO; /* the probe page: zero-filled */
	if (!vma->vm_file)
		return vma->vm_ops == &anon_vm_ops ? QUERY_FAULT_ZERO :
						     QUERY_FAULT_OTHER;
	b = query_backing(vma);
	if (!b)
		return QUERY_FAULT_OTHER;
	if ((flags & FAULT_FLAG_WRITE) && !(vma->vm_flags & VM_SHARED))
		return QUERY_FAULT_COW;
	pgoff = vma_pgoff_at(vma, addr);
	if (pgoff < b->npages &&
	    (backing_resident(b, pgoff) || backing_reading(b, pgoff)))
		return QUERY_FAULT_MINOR;
	return QUERY_FAULT_FILE;
}

void query_fault_done(int kind, uint64_t read_ns)
{
	uint64_t ns = query_now_ns() - read_ns;
	int i = ns ? 63 - __builtin_clzll(ns) : 0;

	if (kind < 0 || kind >= QUERY_NKINDS)
		kind = QUERY_FAULT_OTHER;
	q.kinds[kind]++;
	q.lat_hist[i < UPAGE_LAT_BUCKETS ? i : UPAGE_LAT_BUCKETS - 1]++;
	q.lat_count++;
	q.lat_sum += ns;
	if (ns > q.lat_max)
		q.lat_max = ns;
}

static bool query_may_see(const struct client *c, const struct umm *u)
{
	return c->uid == 0 || u->uid == c->uid;
}

static void query_hdr(struct upage_hdr *r, const struct upage_hdr *req,
		      size_t len)
{
	r->version = UPAGE_PROTO_VERSION;
	r->type = (uint16_t)(req->type | UPAGE_MSG_REPLY);
	r->len = (uint32_t)len;
	r->id = req->id;
}

/*
 * Every backing object mapped by some VMA, sorted by (dev, ino), no
 * duplicates. Returns how many (*out is malloc'd, NULL when none) or
 * -ENOMEM.
 */
static int query_cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;

	return x < y ? -1 : x > y;
}

static int query_cmp_object(const void *a, const void *b)
{
	const struct backing *x = *(struct backing *const *)a;
	const struct backing *y = *(struct backing *const *)b;

	if (x->as.dev != y->as.dev)
		return x->as.dev < y->as.dev ? -1 : 1;
	return x->as.ino < y->as.ino ? -1 : x->as.ino > y->as.ino;
}

static long query_objects(struct backing ***out)
{
	struct vm_area_struct *vma;
	struct backing **v = NULL;
	size_t n = 0, cap = 0, k = 0;
	struct umm *u;

	*out = NULL;
	for (u = upaged.mms; u; u = u->next)
		for_each_vma(&u->mm, vma) {
			if (!query_backing(vma))
				continue;
			if (n == cap) {
				size_t ncap = cap ? 2 * cap : 64;
				void *p = realloc(v, ncap * sizeof(*v));

				if (!p) {
					free(v);
					return -ENOMEM;
				}
				v = p;
				cap = ncap;
			}
			v[n++] = query_backing(vma);
		}
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), query_cmp_ptr);
	for (size_t i = 0; i < n; i++)
		if (!k || v[i] != v[k - 1])
			v[k++] = v[i];
	qsort(v, k, sizeof(*v), query_cmp_object);
	*out = v;
	return (long)k;
}

static void query_status(struct client *c, const struct upage_hdr *h)
{
	struct upage_status_reply r;
	struct backing **objs;
	struct umm *u;
	long n;

	memset(&r, 0, sizeof(r));
	query_hdr(&r.hdr, h, sizeof(r));
	r.proto_version = UPAGE_PROTO_VERSION;
	snprintf(r.version, sizeof(r.version), "%s", UPAGED_VERSION);
	r.uptime_ns = query_now_ns() - q.start_ns;
	r.clients = upaged.nclients;
	r.mms = upaged.nmms;
	for (u = upaged.mms; u; u = u->next) {
		r.vmas += (uint64_t)u->mm.map_count;
		r.mapped_pages += u->mm.total_vm;
	}
	n = query_objects(&objs);
	if (n < 0)
		r.error = (int32_t)n;
	for (long i = 0; i < n; i++) {
		const struct backing *b = objs[i];

		r.objects++;
		r.resident_pages += b->nr_resident;
		r.dirty_pages += b->nr_dirty;
		r.read_ios += b->stats.read_ios;
		r.read_bytes += b->stats.read_pages * PAGE_SIZE;
		r.ra_pages += b->stats.ra_pages;
		r.writeback_ios += b->stats.writeback_ios;
		r.writeback_bytes += b->stats.writeback_pages * PAGE_SIZE;
		r.evicted_pages += b->stats.evicted_pages;
		r.io_errors += b->stats.io_errors;
	}
	free(objs);
	r.faults = upaged.cnt.faults;
	r.faults_zero = q.kinds[QUERY_FAULT_ZERO];
	r.faults_file = q.kinds[QUERY_FAULT_FILE];
	r.faults_cow = q.kinds[QUERY_FAULT_COW];
	r.faults_wp = q.kinds[QUERY_FAULT_WP];
	r.faults_minor = q.kinds[QUERY_FAULT_MINOR];
	r.faults_other = q.kinds[QUERY_FAULT_OTHER];
	r.lat_count = q.lat_count;
	r.lat_max_ns = q.lat_max;
	r.lat_sum_ns = q.lat_sum;
	memcpy(r.lat_hist, q.lat_hist, sizeof(r.lat_hist));
	r.global = upaged.cnt;
	reclaim_status(&r);
	proto_send(c->fd, &r, sizeof(r));
}

/* One page of a listed reply, built in place. */
struct query_page {
	union {
		struct upage_list_reply r;
		uint64_t buf[UPAGE_MSG_MAX / 8];
	} u;
	size_t esize;
	size_t max;
};

static void *query_page_init(struct query_page *p, size_t esize)
{
	memset(&p->u.r, 0, sizeof(p->u.r));
	p->esize = esize;
	p->max = (UPAGE_MSG_MAX - sizeof(p->u.r)) / esize;
	p->u.r.entry_size = (uint32_t)esize;
	return (char *)p->u.buf + sizeof(p->u.r);
}

static void *query_page_entry(struct query_page *p, size_t i)
{
	void *e = (char *)p->u.buf + sizeof(p->u.r) + i * p->esize;

	memset(e, 0, p->esize);
	return e;
}

static void query_page_send(struct client *c, const struct upage_hdr *req,
			    struct query_page *p, size_t count, bool end,
			    int error)
{
	size_t len = sizeof(p->u.r) + (error ? 0 : count * p->esize);

	query_hdr(&p->u.r.hdr, req, len);
	p->u.r.error = error;
	p->u.r.count = error ? 0 : (uint16_t)count;
	p->u.r.flags = end || error ? UPAGE_LIST_END : 0;
	proto_send(c->fd, p->u.buf, len);
}

static int query_cmp_pid(const void *a, const void *b)
{
	const struct umm *x = *(struct umm *const *)a;
	const struct umm *y = *(struct umm *const *)b;

	return x->pid < y->pid ? -1 : x->pid > y->pid;
}

/* The kernel's Rss, in pages, of u's VMAs inside its arena; UINT64_MAX
   when the kernel will not say (a daemon without CAP_SYS_PTRACE may not
   read another user's smaps). */
static uint64_t query_resident(const struct umm *u)
{
	unsigned long start = 0, end = 0, kb;
	bool in = false;
	uint64_t pages = 0;
	char path[64], *line = NULL;
	size_t cap = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps", u->pid);
	f = fopen(path, "re");
	if (!f)
		return UINT64_MAX;
	while (getline(&line, &cap, f) > 0) {
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2) {
			in = start >= u->mm.mmap_base && end <= u->mm.task_size;
			continue;
		}
		if (in && sscanf(line, "Rss: %lu kB", &kb) == 1)
			pages += kb / (PAGE_SIZE / 1024);
	}
	free(line);
	fclose(f);
	return pages;
}

static void query_comm(pid_t pid, char *comm, size_t size)
{
	char path[64];
	ssize_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	f = fopen(path, "re");
	comm[0] = '\0';
	if (!f)
		return;
	n = (ssize_t)fread(comm, 1, size - 1, f);
	fclose(f);
	if (n < 0)
		n = 0;
	comm[n] = '\0';
	comm[strcspn(comm, "\n")] = '\0';
}

/* The mm of pid the peer may see: NULL with *err -ESRCH or -EACCES. */
static struct umm *query_find(struct client *c, pid_t pid, int *err)
{
	struct umm *u;

	for (u = upaged.mms; u; u = u->next)
		if (u->pid == pid && pid > 0)
			break;
	*err = !u ? -ESRCH : !query_may_see(c, u) ? -EACCES : 0;
	return *err ? NULL : u;
}

static void query_clients(struct client *c, const struct upage_query *m)
{
	struct query_page p;
	struct umm *u, **v;
	size_t n = 0, i;

	query_page_init(&p, sizeof(struct upage_client_entry));
	if (m->pid) {
		/* One process, named: not there and not yours are errors. */
		int err;

		u = query_find(c, m->pid, &err);
		if (!u) {
			query_page_send(c, &m->hdr, &p, 0, true, err);
			return;
		}
	}
	v = malloc((upaged.nmms + 1) * sizeof(*v));
	if (!v) {
		query_page_send(c, &m->hdr, &p, 0, true, -ENOMEM);
		return;
	}
	/* Unbound fork children have no pid to list yet. */
	for (u = upaged.mms; u; u = u->next)
		if (u->pid > 0 && (uint64_t)u->pid > m->cursor &&
		    (!m->pid || u->pid == m->pid) && query_may_see(c, u))
			v[n++] = u;
	qsort(v, n, sizeof(*v), query_cmp_pid);
	for (i = 0; i < n && i < p.max; i++) {
		struct upage_client_entry *e = query_page_entry(&p, i);

		u = v[i];
		e->pid = u->pid;
		e->uid = u->uid;
		query_comm(u->pid, e->comm, sizeof(e->comm));
		e->map_count = (uint64_t)u->mm.map_count;
		e->mapped_pages = u->mm.total_vm;
		e->resident_pages = query_resident(u);
		e->faults = u->cnt.faults;
		e->connected = u->client != NULL;
		p.u.r.cursor = (uint64_t)u->pid;
	}
	free(v);
	query_page_send(c, &m->hdr, &p, i, i == n, 0);
}

static void query_maps(struct client *c, const struct upage_query *m)
{
	struct vm_area_struct *vma;
	struct query_page p;
	struct umm *u;
	size_t i = 0;
	int err;

	query_page_init(&p, sizeof(struct upage_map_entry));
	u = query_find(c, m->pid, &err);
	if (!u) {
		query_page_send(c, &m->hdr, &p, 0, true, err);
		return;
	}
	vma = find_vma(&u->mm, m->cursor);
	for (; vma && i < p.max; vma = vma_next(vma)) {
		struct upage_map_entry *e;

		if (vma->vm_ops == &hole_vm_ops)
			continue; /* bookkeeping, not a mapping */
		e = query_page_entry(&p, i++);
		e->start = vma->vm_start;
		e->end = vma->vm_end;
		e->vm_flags = vma->vm_flags;
		if (vma->vm_file) {
			struct backing *b = query_backing(vma);

			e->offset = (uint64_t)vma->vm_pgoff << PAGE_SHIFT;
			e->ino = vma->vm_file->ino;
			e->dev_major = major(vma->vm_file->dev);
			e->dev_minor = minor(vma->vm_file->dev);
			if (b)
				snprintf(e->path, sizeof(e->path), "%s",
					 b->path);
		}
		p.u.r.cursor = vma->vm_end;
	}
	/* Holes left at the end of a page cost one more round trip only. */
	query_page_send(c, &m->hdr, &p, i, vma == NULL, 0);
}

/* Counts the processes and VMAs of mms the peer may see that map b. */
static void query_mappers(struct client *c, struct backing *b,
			  uint32_t *mappers, uint32_t *vmas)
{
	struct vm_area_struct *vma;
	struct umm **seen = NULL;
	size_t n = 0, cap = 0;

	*mappers = *vmas = 0;
	rmap_for_each(vma, &b->as, 0, ~0UL >> 1) {
		struct umm *u = query_umm(vma->vm_mm);
		size_t i;

		if (!query_may_see(c, u))
			continue;
		(*vmas)++;
		for (i = 0; i < n && seen[i] != u; i++)
			;
		if (i < n)
			continue;
		if (n == cap) {
			size_t ncap = cap ? 2 * cap : 16;
			void *np = realloc(seen, ncap * sizeof(*seen));

			if (!np)
				continue; /* an undercount, not a failure */
			seen = np;
			cap = ncap;
		}
		seen[n++] = u;
	}
	free(seen);
	*mappers = (uint32_t)n;
}

static void query_files(struct client *c, const struct upage_query *m)
{
	struct backing **objs;
	struct query_page p;
	size_t i = 0;
	long n, k;

	query_page_init(&p, sizeof(struct upage_file_entry));
	n = query_objects(&objs);
	if (n < 0) {
		query_page_send(c, &m->hdr, &p, 0, true, (int)n);
		return;
	}
	for (k = 0; k < n && i < p.max; k++) {
		struct backing *b = objs[k];
		struct upage_file_entry *e;
		uint32_t mappers, vmas;

		if ((m->cursor || m->cursor2) &&
		    (b->as.dev < m->cursor ||
		     (b->as.dev == m->cursor && b->as.ino <= m->cursor2)))
			continue;
		query_mappers(c, b, &mappers, &vmas);
		if (!vmas)
			continue; /* nobody the peer may see maps it */
		e = query_page_entry(&p, i++);
		e->dev = b->as.dev;
		e->ino = b->as.ino;
		e->size = b->size;
		e->resident_pages = b->nr_resident;
		e->dirty_pages = b->nr_dirty;
		e->mappers = mappers;
		e->vmas = vmas;
		snprintf(e->path, sizeof(e->path), "%s", b->path);
		p.u.r.cursor = b->as.dev;
		p.u.r.cursor2 = b->as.ino;
	}
	free(objs);
	query_page_send(c, &m->hdr, &p, i, k == n, 0);
}

void query_dispatch(struct client *c, const void *buf)
{
	const struct upage_hdr *h = buf;

	if (h->type != UPAGE_MSG_STATUS &&
	    ((const struct upage_query *)buf)->flags) {
		struct query_page p;

		query_page_init(&p, 1);
		query_page_send(c, h, &p, 0, true, -EINVAL);
		return;
	}
	switch (h->type) {
	case UPAGE_MSG_STATUS:
		query_status(c, h);
		break;
	case UPAGE_MSG_CLIENTS:
		query_clients(c, buf);
		break;
	case UPAGE_MSG_MAPS:
		query_maps(c, buf);
		break;
	case UPAGE_MSG_FILES:
		query_files(c, buf);
		break;
	}
}
