/*
 * slab.h - fixed-size blocks carved from chunks of 4 to 64 KiB (2 MiB huge
 * pages once a slab holds 16 MiB), for the engine's VMAs and index nodes.
 *
 * Contract: a block costs exactly its size (rounded to the slab's
 * alignment) plus a share of one chunk header; freed blocks are recycled
 * through a free list and chunks are never returned. slab_reserve()
 * guarantees that the next n slab_alloc() calls succeed, so that an
 * operation can take what it needs before it changes anything. Under
 * AddressSanitizer every block is its own malloc() and is freed at once,
 * so that a use after free is caught. Not thread-safe.
 */
#ifndef UPAGED_SLAB_H
#define UPAGED_SLAB_H

#include <stddef.h>

struct slab {
	size_t size;   /* bytes per block, a multiple of align */
	size_t align;  /* block alignment, a power of two */
	void *free;    /* free blocks, linked through their first word */
	size_t nfree;  /* blocks on the free list */
	void *chunks;  /* every chunk, linked through its header */
	size_t bytes;  /* held from the system */
};

#define SLAB_INIT(type, alignment) \
	{ .size = (sizeof(type) + (alignment) - 1) & ~((size_t)(alignment) - 1), \
	  .align = (alignment) }

/* 0, or -ENOMEM if n free blocks cannot be had. */
int slab_reserve(struct slab *s, size_t n);
/* A block, or NULL when memory runs out and nothing was reserved. */
void *slab_alloc(struct slab *s);
void slab_free(struct slab *s, void *p);

#endif
