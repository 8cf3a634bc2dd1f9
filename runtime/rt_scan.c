/*
 * Finding a return into the functions being switched among a stack's
 * words (rt_scan.c): the ranges indexed once per check, then each block
 * of words ruled out with one compare, AVX2 where the CPU has it.
 */
#include "runtime/runtime_int.h"

#include <assert.h>
#include <errno.h>
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int cmp_start(const void *a, const void *b)
{
	const struct range_entry *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

int hp_index_ranges(const struct hp_busy_range *r, size_t nr,
		    struct range_index *x)
{
	uint64_t hi = 0;

	*x = (struct range_index){ .r = r, .lo = UINT64_MAX, .nr_r = nr };
	x->e = calloc(nr + 1, sizeof(*x->e));
	if (!x->e)
		return -ENOMEM;
	for (size_t i = 0; i < nr; i++)
		if (!r[i].ip_only && r[i].start < r[i].end)
			x->e[x->nr++] = (struct range_entry){ r[i].start,
							      r[i].end, 0, i };
	qsort(x->e, x->nr, sizeof(*x->e), cmp_start);
	for (size_t i = 0; i < x->nr; i++) {
		hi = x->e[i].end > hi ? x->e[i].end : hi;
		x->e[i].max_end = hi;
	}
	if (x->nr) {
		x->lo = x->e[0].start;
		x->span = hi - x->lo;
	}
	return 0;
}

/*
 * The first range (in the caller's order) holding stack word @v. A word
 * equal to a function's first byte is no return address (a call returns
 * past itself, inside its caller) but a function pointer, a callback say,
 * and must not keep the function busy forever.
 */
static const struct hp_busy_range *lookup_word(const struct range_index *x,
					       uint64_t v)
{
	size_t lo = 0, hi = x->nr, best = SIZE_MAX;

	while (lo < hi) { /* hi: the number of ranges starting at or below v */
		const size_t mid = lo + (hi - lo) / 2;

		if (x->e[mid].start <= v)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i-- > 0 && x->e[i].max_end > v;)
		if (v < x->e[i].end && v != x->e[i].start && x->e[i].idx < best)
			best = x->e[i].idx;
	return best == SIZE_MAX ? NULL : &x->r[best];
}

static inline bool in_span(const struct range_index *x, uint64_t v)
{
	return v - x->lo < x->span;
}

static bool is_restorer(const struct range_index *x, uint64_t v)
{
	for (size_t k = 0; k < x->nr_restorers; k++)
		if (v == x->restorers[k])
			return true;
	return false;
}

/*
 * Word by word: the first return into a range, or (with @frame_at) the
 * offset of the first restorer word, whichever comes first.
 */
static const struct hp_busy_range *scan_words(const uint8_t *p, size_t len,
					      const struct range_index *x,
					      size_t *frame_at)
{
	const struct hp_busy_range *hit = NULL;

	for (size_t j = 0; j + sizeof(uint64_t) <= len && !hit;
	     j += sizeof(uint64_t)) {
		uint64_t v;

		memcpy(&v, p + j, sizeof(v));
		if (in_span(x, v))
			hit = lookup_word(x, v);
		if (!hit && frame_at && is_restorer(x, v)) {
			*frame_at = j;
			break;
		}
	}
	return hit;
}

/* A block of words where scan_words found something: a return (the
 * result), or a restorer word, its offset moved by the block's @at. */
static const struct hp_busy_range *block_found(const struct hp_busy_range *hit,
					       size_t at, size_t *frame_at)
{
	if (!hit && frame_at && *frame_at != SIZE_MAX)
		*frame_at += at;
	return hit;
}

static bool block_done(const struct hp_busy_range *hit, const size_t *frame_at)
{
	return hit || (frame_at && *frame_at != SIZE_MAX);
}

/*
 * The first return into a range on the @len bytes of stack at @p. Words
 * are tested eight at a time without a branch each (a stack word almost
 * never lies in the span of the patched functions); only a block with one
 * that does is looked at word by word. With @frame_at, a restorer word
 * stops the scan too.
 */
static const struct hp_busy_range *scan_stack_plain(const uint8_t *p,
						    size_t len,
						    const struct range_index *x,
						    size_t *frame_at)
{
	const bool frames = frame_at && x->nr_restorers;
	size_t j = 0;

	for (; j + 8 * sizeof(uint64_t) <= len; j += 8 * sizeof(uint64_t)) {
		const struct hp_busy_range *hit = NULL;
		uint64_t v[8];
		bool any = false;

		memcpy(v, p + j, sizeof(v));
		any = in_span(x, v[0]) | in_span(x, v[1]) | in_span(x, v[2]) |
		      in_span(x, v[3]) | in_span(x, v[4]) | in_span(x, v[5]) |
		      in_span(x, v[6]) | in_span(x, v[7]);
		for (size_t k = 0; k < 8 && frames && !any; k++)
			any = is_restorer(x, v[k]);
		if (!any)
			continue;
		hit = scan_words(p + j, sizeof(v), x, frame_at);
		if (block_done(hit, frame_at))
			return block_found(hit, j, frame_at);
	}
	return block_found(scan_words(p + j, len - j, x, frame_at), j,
			   frame_at);
}

#define HP_SCAN_BLOCK 128 /* bytes: four 256-bit compares */

/*
 * The same, sixteen words per step with AVX2: in_span as one signed
 * compare per four words ((v - lo) ^ 2^63 < span ^ 2^63 is the unsigned
 * v - lo < span), after one add. The plain loop's chain of compares ran
 * at ~2 cycles a word; this one, at ~0.5, leaves the stacks read in the
 * stop (~4 KiB a thread, hot in cache) scanned 2.5x faster: 256 threads,
 * 1.1 MiB, 63 -> 26 us per CPU. @nr_eq restorers (0 to HP_RESTORERS_MAX,
 * a constant where inlined) are one compare for equality each per four
 * words (1 MiB: 39 us without, 42 with one): the restorer is in the C
 * library, far from the patched code, and in the span it would put most
 * stack words (pointers into libraries) to the word-by-word look.
 */
__attribute__((target("avx2"),
	       always_inline)) static inline const struct hp_busy_range *
scan_avx2(const uint8_t *p, size_t len, const struct range_index *x,
	  size_t *frame_at, size_t nr_eq)
{
	/* (v - lo) ^ 2^63 is v + (2^63 - lo): one add. */
	const __m256i shift =
		_mm256_set1_epi64x((long long)((1ULL << 63) - x->lo));
	const __m256i lim =
		_mm256_set1_epi64x((long long)(x->span ^ (1ULL << 63)));
	const __m256i eq0 = _mm256_set1_epi64x((long long)x->restorers[0]);
	const __m256i eq1 = _mm256_set1_epi64x((long long)x->restorers[1]);
	size_t j = 0;

	for (; j + HP_SCAN_BLOCK <= len; j += HP_SCAN_BLOCK) {
		const struct hp_busy_range *hit = NULL;
		__m256i any = _mm256_setzero_si256();

		for (size_t k = 0; k < HP_SCAN_BLOCK; k += sizeof(__m256i)) {
			const __m256i v = _mm256_loadu_si256(
				(const __m256i *)(const void *)(p + j + k));
			const __m256i d = _mm256_add_epi64(v, shift);

			any = _mm256_or_si256(any, _mm256_cmpgt_epi64(lim, d));
			if (nr_eq > 0)
				any = _mm256_or_si256(
					any, _mm256_cmpeq_epi64(v, eq0));
			if (nr_eq > 1)
				any = _mm256_or_si256(
					any, _mm256_cmpeq_epi64(v, eq1));
		}
		if (_mm256_testz_si256(any, any))
			continue;
		hit = scan_words(p + j, HP_SCAN_BLOCK, x, frame_at);
		if (block_done(hit, frame_at))
			return block_found(hit, j, frame_at);
	}
	return block_found(scan_words(p + j, len - j, x, frame_at), j,
			   frame_at);
}

__attribute__((target("avx2"))) static const struct hp_busy_range *
scan_stack_avx2(const uint8_t *p, size_t len, const struct range_index *x,
		size_t *frame_at)
{
	const size_t nr_eq = frame_at ? x->nr_restorers : 0;

	static_assert(HP_RESTORERS_MAX == 2, "scan_avx2 compares two at most");
	if (nr_eq == 0)
		return scan_avx2(p, len, x, NULL, 0);
	if (nr_eq == 1)
		return scan_avx2(p, len, x, frame_at, 1);
	return scan_avx2(p, len, x, frame_at, 2);
}

/* Tests compare the two loops: set, the plain one runs on every CPU. */
bool hp_stack_scan_plain;

const struct hp_busy_range *hp_scan_stack(const uint8_t *p, size_t len,
					  const struct range_index *x,
					  size_t *frame_at)
{
	static int avx2 = -1; /* unknown yet; set by both CPUs alike */
	int has = __atomic_load_n(&avx2, __ATOMIC_RELAXED);

	if (frame_at)
		*frame_at = SIZE_MAX;
	if (has < 0) {
		has = __builtin_cpu_supports("avx2") ? 1 : 0;
		__atomic_store_n(&avx2, has, __ATOMIC_RELAXED);
	}
	if (has && !hp_stack_scan_plain)
		return scan_stack_avx2(p, len, x, frame_at);
	return scan_stack_plain(p, len, x, frame_at);
}
