/*
 * policy_shmem.c - anonymous shared memory (MAP_SHARED | MAP_ANONYMOUS).
 *
 * Contract
 *
 * - One memfd per mapping, the daemon's, sized to it; the client maps it
 *   shared over its reservation. The kernel's shmem gives its pages (zeroes
 *   first) and fork children share them, as with the kernel's own shared
 *   anonymous memory. Nothing is registered with the userfaultfd: there is
 *   nothing to read in, and no budget takes anonymous memory.
 * - The VMA is the model's as any other (maps, mprotect, munmap, fork,
 *   mremap: a tail past the memfd's end raises SIGBUS, as the kernel's
 *   does). Its vm_file is the object's address_space; every VMA holds a
 *   reference, and the memfd goes with the last.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "upaged.h"

struct shm_object {
	struct address_space as;
	int memfd;
	int refs;
};

static struct shm_object *shm_of(const struct vm_area_struct *vma)
{
	return container_of(vma->vm_file, struct shm_object, as);
}

static void shm_put(struct shm_object *o)
{
	if (--o->refs)
		return;
	close(o->memfd);
	free(o);
}

static void shm_vma_open(struct vm_area_struct *vma)
{
	shm_of(vma)->refs++;
}

static void shm_vma_close(struct vm_area_struct *vma)
{
	shm_put(shm_of(vma));
}

const struct vm_operations_struct shm_vm_ops = {
	.name = "shmem",
	.open = shm_vma_open,
	.close = shm_vma_close,
};

int shm_memfd(const struct vm_area_struct *vma)
{
	return shm_of(vma)->memfd;
}

long shm_map(struct umm *u, const struct upage_map *m, int *memfd)
{
	unsigned long len = PAGE_ALIGN(m->len);
	struct shm_object *o = calloc(1, sizeof(*o));
	struct mmap_req req;
	struct stat st;
	long addr;

	if (!o)
		return -ENOMEM;
	o->refs = 1; /* ours, until the VMA holds its own */
	o->memfd = memfd_create("upaged-shm", MFD_CLOEXEC);
	if (o->memfd < 0 || ftruncate(o->memfd, (off_t)len) < 0 ||
	    fstat(o->memfd, &st) < 0) {
		addr = -errno;
		if (o->memfd >= 0)
			close(o->memfd);
		free(o);
		return addr;
	}
	address_space_init(&o->as, st.st_dev, st.st_ino);
	memset(&req, 0, sizeof(req));
	req.addr = m->addr;
	req.len = len;
	req.prot = m->prot;
	req.flags = m->flags;
	req.obj = &o->as;
	req.ops = &shm_vm_ops;
	req.fmode = MAP_FMODE_READ | MAP_FMODE_WRITE | MAP_FMODE_EXEC;
	addr = do_mmap(&u->mm, &req, NULL);
	if (addr >= 0)
		*memfd = o->memfd; /* held by the VMA from now on */
	shm_put(o);
	return addr;
}
