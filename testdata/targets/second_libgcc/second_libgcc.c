/*
 * Preloaded into a target (LD_PRELOAD): loads the libgcc_s named by
 * HP_SECOND_LIBGCC again, with dlmopen into a link-map namespace of its
 * own, so that the process maps a second unwinder, with a registry of
 * its own, below the program's (tests/e2e/unwind_two_libgcc.sh).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

__attribute__((constructor)) static void load_second(void)
{
	const char *path = getenv("HP_SECOND_LIBGCC");
	void *h =
		path ? dlmopen(LM_ID_NEWLM, path, RTLD_NOW | RTLD_LOCAL) : NULL;

	if (!h)
		fprintf(stderr, "second_libgcc: %s\n",
			path ? dlerror() : "HP_SECOND_LIBGCC not set");
	else /* where it is: the test checks that it lies lowest */
		fprintf(stderr, "second_libgcc: __register_frame_info at %p\n",
			dlsym(h, "__register_frame_info"));
}
