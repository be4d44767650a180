/*
 * policy_anon.c - anonymous private memory: zero-fill on first touch.
 *
 * Contract: anon_vm_ops.fault() fills the faulting page and the pages after
 * it, up to the cluster size (--cluster) and never past the VMA's end, with
 * zeroes; fault_fill_zero() stops early at a page already present. Pages
 * are never read back: anonymous memory has no backing store to sync.
 * hole_vm_ops marks arena ranges the client unmapped behind the library's
 * back: nothing is placed there, and they never fault (not registered).
 */
#include "upaged.h"

static int anon_fault(struct vm_area_struct *vma, struct vm_fault *vmf)
{
	unsigned long end = vmf->address + upaged.cluster * PAGE_SIZE;
	long r;

	if (end > vma->vm_end || end < vmf->address)
		end = vma->vm_end;
	r = fault_fill_zero(vmf, vmf->address, end - vmf->address);
	return r < 0 ? (int)r : 0;
}

const struct vm_operations_struct anon_vm_ops = {
	.name = "anon",
	.fault = anon_fault,
};

const struct vm_operations_struct hole_vm_ops = {
	.name = "hole",
};
