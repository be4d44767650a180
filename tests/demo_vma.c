/*
 * demo_vma.c - `make demo`: the VMA engine on the classic examples, printed
 * as /proc/PID/maps lines.
 *
 * Neighbouring regions merge, a hole punched in a region splits it, a small
 * dynamically linked program's address space is laid out region by region,
 * and the reverse map answers "who maps these pages of this file?". Nothing
 * here touches real memory: the engine only models addresses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>

#include "vma.h"

/* A process as the demo sees it: an mm plus names for its mappings. */
struct proc {
	int pid;
	struct mm_struct mm;
};

/* A file: the engine's object plus the path maps shows. */
struct file {
	struct address_space as;
	const char *path;
};

#define MAX_FILES 8
static struct file *files[MAX_FILES];
static int nfiles;

static struct file *file_new(unsigned int maj, unsigned int min,
			     unsigned long ino, const char *path)
{
	struct file *f = calloc(1, sizeof(*f));

	if (!f || nfiles == MAX_FILES)
		abort();
	address_space_init(&f->as, makedev(maj, min), ino);
	f->path = path;
	files[nfiles++] = f;
	return f;
}

static const char *path_of(const struct vm_area_struct *vma)
{
	for (int i = 0; i < nfiles; i++)
		if (vma->vm_file == &files[i]->as)
			return files[i]->path;
	if (vma->vm_flags & VM_GROWSDOWN)
		return "[stack]";
	return NULL;
}

static void print_maps(const char *title, struct proc *p)
{
	struct vm_area_struct *vma;
	char line[256];

	if (validate_mm(&p->mm))
		exit(1);
	printf("  $ cat /proc/%d/maps%s%s\n", p->pid, *title ? "    # " : "",
	       title);
	for_each_vma(&p->mm, vma) {
		vma_format_maps(vma, path_of(vma), line, sizeof(line));
		printf("  %s\n", line);
	}
	printf("  (%d VMA%s)\n\n", p->mm.map_count,
	       p->mm.map_count == 1 ? "" : "s");
}

static void map_or_die(struct proc *p, unsigned long addr, unsigned long len,
		       int prot, int flags, struct file *f,
		       unsigned long offset, unsigned int vm_flags)
{
	struct mmap_req req = {
		.addr = addr, .len = len, .prot = prot,
		.flags = flags | MAP_FIXED | (f ? 0 : MAP_ANONYMOUS),
		.obj = f ? &f->as : NULL, .pgoff = offset >> PAGE_SHIFT,
		.fmode = MAP_FMODE_READ | MAP_FMODE_EXEC, .vm_flags = vm_flags,
	};
	long ret = do_mmap(&p->mm, &req, NULL);

	if (ret != (long)addr) {
		fprintf(stderr, "demo: mapping %#lx failed: %ld\n", addr, ret);
		exit(1);
	}
}

static void demo_merge_and_split(void)
{
	struct proc p = { .pid = 4242 };
	const int rw = PROT_READ | PROT_WRITE;

	mm_init(&p.mm, 0x10000000UL, 0x20000000UL);
	printf("1. Regions that touch and agree in everything become one VMA.\n"
	       "   Two anonymous read-write regions with a 16 KiB hole:\n\n");
	map_or_die(&p, 0x10000000UL, 0x4000, rw, MAP_PRIVATE, NULL, 0, 0);
	map_or_die(&p, 0x10008000UL, 0x4000, rw, MAP_PRIVATE, NULL, 0, 0);
	print_maps("before", &p);
	printf("   Mapping the hole with the same protection leaves a single "
	       "region:\n\n");
	map_or_die(&p, 0x10004000UL, 0x4000, rw, MAP_PRIVATE, NULL, 0, 0);
	print_maps("after filling the hole", &p);
	printf("   A read-only neighbour differs in its flags, so it stays "
	       "apart:\n\n");
	map_or_die(&p, 0x1000c000UL, 0x2000, PROT_READ, MAP_PRIVATE, NULL, 0,
		   0);
	print_maps("after a read-only neighbour", &p);

	printf("2. Unmapping the middle of a region splits it in two; "
	       "unmapping at an\n   edge only trims it.\n\n");
	if (do_munmap(&p.mm, 0x10004000UL, 0x2000) ||
	    do_munmap(&p.mm, 0x1000d000UL, 0x1000))
		exit(1);
	print_maps("after munmap(0x10004000, 8 KiB) and of the last page",
		   &p);
	exit_mmap(&p.mm);
}

static void demo_process_layout(void)
{
	struct file *exe = file_new(0xfe, 0, 393311, "/usr/local/bin/hello");
	struct file *libc = file_new(0xfe, 0, 332835,
				     "/usr/lib/x86_64-linux-gnu/libc.so.6");
	struct file *ld = file_new(0xfe, 0, 332801,
				   "/usr/lib/x86_64-linux-gnu/ld-linux.so.2");
	struct proc p = { .pid = 1426 };
	const int rx = PROT_READ | PROT_EXEC, rw = PROT_READ | PROT_WRITE;
	struct vm_area_struct *vma;
	unsigned long writable_private = 0;

	mm_init(&p.mm, 0x00001000UL, 0xc0000000UL);
	printf("3. A program that does nothing, dynamically linked: text, data "
	       "and bss\n   for itself, the C library and the loader, some "
	       "anonymous memory and\n   a stack that grows down (VM_GROWSDOWN).\n"
	       "   Text is read+execute, data and bss read+write; bss is "
	       "anonymous\n   (device 00:00, inode 0): zero-filled, copied on "
	       "first write.\n\n");
	/* libc: text, data (its own file offset), bss. */
	map_or_die(&p, 0x00e80000UL, 0x12f000, rx, MAP_PRIVATE, libc, 0, 0);
	map_or_die(&p, 0x00faf000UL, 0x3000, rw, MAP_PRIVATE, libc, 0x12f000,
		   0);
	map_or_die(&p, 0x00fb2000UL, 0x2000, rw, MAP_PRIVATE, NULL, 0, 0);
	/* The executable. */
	map_or_die(&p, 0x08048000UL, 0x1000, rx, MAP_PRIVATE, exe, 0, 0);
	map_or_die(&p, 0x08049000UL, 0x1000, rw, MAP_PRIVATE, exe, 0x1000, 0);
	/* The dynamic loader, and an anonymous page it allocated. */
	map_or_die(&p, 0x40000000UL, 0x15000, rx, MAP_PRIVATE, ld, 0, 0);
	map_or_die(&p, 0x40015000UL, 0x1000, rw, MAP_PRIVATE, ld, 0x15000, 0);
	map_or_die(&p, 0x4001e000UL, 0x1000, rw, MAP_PRIVATE, NULL, 0, 0);
	/* The stack, right below the top of the address space. */
	map_or_die(&p, 0xbfffe000UL, 0x2000, rw | PROT_EXEC, MAP_PRIVATE, NULL,
		   0, VM_GROWSDOWN);
	print_maps("the whole address space", &p);

	for_each_vma(&p.mm, vma)
		if ((vma->vm_flags & VM_WRITE) && !(vma->vm_flags & VM_MAYSHARE))
			writable_private += vma->vm_end - vma->vm_start;
	printf("   mapped: %lu KiB, writable/private: %lu KiB. Only the "
	       "writable private\n   pages need a copy per process; text is "
	       "shared by everyone who maps it.\n\n",
	       p.mm.total_vm * (PAGE_SIZE / 1024), writable_private / 1024);
	exit_mmap(&p.mm);
}

static void rmap_query(struct file *f, unsigned long first,
		       unsigned long last, struct proc *procs, int nprocs)
{
	struct vm_area_struct *vma;
	int hits = 0;

	printf("   pages [%lu, %lu]:", first, last);
	rmap_for_each(vma, &f->as, first, last) {
		unsigned long lo = first > vma->vm_pgoff ? first : vma->vm_pgoff;
		unsigned long vlast = vma->vm_pgoff + vma_pages(vma) - 1;
		unsigned long hi = last < vlast ? last : vlast;

		for (int i = 0; i < nprocs; i++)
			if (vma->vm_mm == &procs[i].mm)
				printf("%s pid %d at %#lx-%#lx", hits ? "," : "",
				       procs[i].pid, vma_address(vma, lo),
				       vma_address(vma, hi) + PAGE_SIZE);
		hits++;
	}
	printf("%s\n", hits ? "" : " nobody");
}

static void demo_rmap(void)
{
	struct file *db = file_new(0x08, 0x01, 131075, "/srv/data/table.db");
	struct proc procs[3] = { { .pid = 2001 }, { .pid = 2002 },
				 { .pid = 2003 } };

	printf("4. The reverse map. Processes 2001 and 2002 map pages 7..12 of "
	       "one file,\n   process 2003 maps pages 10..30. Each VMA sits in "
	       "the file's interval\n   tree, so asking which processes map a "
	       "range of pages is one walk.\n\n");
	for (int i = 0; i < 3; i++)
		mm_init(&procs[i].mm, 0x10000000UL, 0x20000000UL);
	map_or_die(&procs[0], 0x10040000UL, 6 * PAGE_SIZE, PROT_READ,
		   MAP_SHARED, db, 7 * PAGE_SIZE, 0);
	map_or_die(&procs[1], 0x1a000000UL, 6 * PAGE_SIZE, PROT_READ,
		   MAP_PRIVATE, db, 7 * PAGE_SIZE, 0);
	map_or_die(&procs[2], 0x10100000UL, 21 * PAGE_SIZE, PROT_READ,
		   MAP_SHARED, db, 10 * PAGE_SIZE, 0);
	for (int i = 0; i < 3; i++)
		print_maps("", &procs[i]);
	rmap_query(db, 0, 6, procs, 3);
	rmap_query(db, 0, 8, procs, 3);
	rmap_query(db, 11, 11, procs, 3);
	rmap_query(db, 13, 40, procs, 3);
	rmap_query(db, 31, 40, procs, 3);

	printf("\n   Process 2003 unmaps pages 15..19; its VMA splits and the "
	       "tree follows:\n");
	if (do_munmap(&procs[2].mm, 0x10105000UL, 5 * PAGE_SIZE))
		exit(1);
	rmap_query(db, 13, 40, procs, 3);
	if (validate_rmap(&db->as))
		exit(1);
	for (int i = 0; i < 3; i++)
		exit_mmap(&procs[i].mm);
	printf("\n");
}

int main(void)
{
	printf("upaged VMA engine demo: regions in the /proc/PID/maps format\n"
	       "(start-end perms offset dev inode path).\n\n");
	demo_merge_and_split();
	demo_process_layout();
	demo_rmap();
	for (int i = 0; i < nfiles; i++)
		free(files[i]);
	return 0;
}
