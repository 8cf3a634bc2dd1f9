/*
 * An allocator preloaded (LD_PRELOAD), as jemalloc or tcmalloc often is:
 * malloc, free, calloc, realloc and malloc_stats over glibc's, with a
 * lock of its own for blocks over 1 KiB (as glibc's arena lock, which
 * its per-thread cache spares small ones), held by malloc_stats while it
 * writes to stderr (tests/e2e/unwind_lock_preload.sh). It is the
 * program's allocator, though mapped above libc.so.6.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stddef.h>
#include <unistd.h>

#define BIG 1024

extern void *__libc_malloc(size_t n);
extern void __libc_free(void *p);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);

static pthread_mutex_t big_lock = PTHREAD_MUTEX_INITIALIZER;

void *malloc(size_t n)
{
	void *p = NULL;

	if (n <= BIG)
		return __libc_malloc(n);
	pthread_mutex_lock(&big_lock);
	p = __libc_malloc(n);
	pthread_mutex_unlock(&big_lock);
	return p;
}

void free(void *p)
{
	if (!p || malloc_usable_size(p) <= BIG) {
		__libc_free(p);
		return;
	}
	pthread_mutex_lock(&big_lock);
	__libc_free(p);
	pthread_mutex_unlock(&big_lock);
}

void *calloc(size_t n, size_t size)
{
	void *p = NULL;

	pthread_mutex_lock(&big_lock);
	p = __libc_calloc(n, size);
	pthread_mutex_unlock(&big_lock);
	return p;
}

void *realloc(void *p, size_t n)
{
	void *q = NULL;

	pthread_mutex_lock(&big_lock);
	q = __libc_realloc(p, n);
	pthread_mutex_unlock(&big_lock);
	return q;
}

void malloc_stats(void)
{
	static const char line[] = "own_malloc: stats\n";

	pthread_mutex_lock(&big_lock);
	if (write(2, line, sizeof(line) - 1) < 0)
		_exit(3);
	pthread_mutex_unlock(&big_lock);
}
