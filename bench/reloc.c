/*
 * bench/reloc: cost of the runtime's relocation engine. Applies a table of
 * 1 Mi relocations of mixed types and bases (PC32 to image and module,
 * ABS64 to a symbol, ABS32S, PC64) over a 4 MiB image, repeatedly, and
 * prints nanoseconds and TSC cycles per relocation (median of runs).
 * Goal: at most 5 cycles, what glibc's ld.so spends on a relative reloc.
 */
#include "common/hp_log.h"
#include "packer/packer.h"
#include "runtime/runtime_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <x86intrin.h>

#define NR_RELOCS (1u << 20)
#define IMAGE_SIZE (4u << 20)
#define RUNS 15

static int cmp_double(const void *a, const void *b)
{
	const double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(void)
{
	struct hp_reloc *relocs = calloc(NR_RELOCS, sizeof(*relocs));
	uint8_t *image = calloc(1, IMAGE_SIZE);
	const hp_raddr_t syms[1] = { 0x7f0000100000ULL };
	struct hp_module m = { .name = (char[]){ "bench" },
			       .relocs = relocs,
			       .nr_relocs = NR_RELOCS };
	const struct hp_reloc_ctx ctx = {
		.image = image,
		.image_size = IMAGE_SIZE,
		.bases = { [HP_RB_IMAGE] = 0x7f0000000000ULL,
			   [HP_RB_MODULE] = 0x7f0010000000ULL },
		.sym_addrs = syms,
		.nr_syms = 1,
	};
	double ns[RUNS], cyc[RUNS];

	if (!relocs || !image)
		return 1;
	srand(1);
	for (uint32_t i = 0; i < NR_RELOCS; i++) {
		struct hp_reloc *r = &relocs[i];

		r->offset = (uint32_t)(((uint64_t)rand() % (IMAGE_SIZE - 8)));
		switch (i % 5) {
		case 0:
			*r = (struct hp_reloc){ r->offset,   HP_R_PC32,
						HP_RB_IMAGE, 0,
						0,	     64 };
			break;
		case 1:
			*r = (struct hp_reloc){
				r->offset, HP_R_PC32, HP_RB_MODULE, 0, 0, -4096
			};
			break;
		case 2:
			*r = (struct hp_reloc){
				r->offset, HP_R_ABS64, HP_RB_SYMBOL, 0, 0, 8
			};
			break;
		case 3:
			*r = (struct hp_reloc){
				r->offset, HP_R_ABS32S, HP_RB_IMAGE,
				0,	   0,		-0x7f0000000000LL
			};
			break;
		default:
			*r = (struct hp_reloc){
				r->offset, HP_R_PC64, HP_RB_MODULE, 0, 0, 0
			};
		}
	}
	/* in the order hpdiff emits them */
	qsort(relocs, NR_RELOCS, sizeof(*relocs), hp_reloc_cmp);
	hp_log_set_level(HP_LOG_ERROR);
	for (int run = 0; run < RUNS; run++) {
		struct timespec a, b;
		uint64_t c0, c1;

		clock_gettime(CLOCK_MONOTONIC, &a);
		c0 = __rdtsc();
		if (hp_reloc_apply(&ctx, &m))
			return 1;
		c1 = __rdtsc();
		clock_gettime(CLOCK_MONOTONIC, &b);
		ns[run] = ((double)(b.tv_sec - a.tv_sec) * 1e9 +
			   (double)(b.tv_nsec - a.tv_nsec)) /
			  NR_RELOCS;
		cyc[run] = (double)(c1 - c0) / NR_RELOCS;
	}
	qsort(ns, RUNS, sizeof(ns[0]), cmp_double);
	qsort(cyc, RUNS, sizeof(cyc[0]), cmp_double);
	printf("relocs=%u types=mixed ns_per_reloc=%.2f cycles_per_reloc=%.2f "
	       "(tsc)\n",
	       NR_RELOCS, ns[RUNS / 2], cyc[RUNS / 2]);
	free(relocs);
	free(image);
	return 0;
}
