/*
 * policy_cow.c - private file mappings: copy-on-write over the page cache.
 *
 * Contract: the client maps the object's memfd MAP_PRIVATE, so reads map
 * the shared page-cache page and the first write to a page makes the
 * hardware fault give that process its own copy, which neither the file
 * nor any other mapper sees. A fault on a page absent from the memfd,
 * read or write, is the shared one of policy_file.c: fill the page cache,
 * then wake (a UFFDIO_COPY into a private range would make a private page
 * the next mapper could not share). Nothing here is ever written back.
 */
#include "upaged.h"

const struct vm_operations_struct cow_vm_ops = {
	.name = "cow",
	.open = file_vma_open,
	.close = file_vma_close, /* never writes shared: only the reference */
	.fault = file_fault,
};
