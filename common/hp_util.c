/*
 * Buffers, file I/O and encodings shared by the components. Files are
 * written atomically (temporary + rename) so a crash never leaves half a key
 * or half a patch behind.
 */
#include "common/hp_util.h"
#include "common/hp_err.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int hp_buf_reserve(struct hp_buf *b, size_t extra)
{
	size_t need = b->len + extra;
	size_t cap = b->cap ? b->cap : 256;
	uint8_t *p = NULL;

	if (need < b->len)
		return -ENOMEM;
	if (need <= b->cap)
		return 0;
	while (cap < need)
		cap *= 2;
	p = realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int hp_buf_append(struct hp_buf *b, const void *p, size_t n)
{
	int rc = hp_buf_reserve(b, n);

	if (rc)
		return rc;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

int hp_buf_align(struct hp_buf *b, size_t align)
{
	size_t pad = HP_ALIGN_UP(b->len, align) - b->len;
	int rc = hp_buf_reserve(b, pad);

	if (rc || !pad)
		return rc;
	memset(b->data + b->len, 0, pad);
	b->len += pad;
	return 0;
}

void hp_buf_release(struct hp_buf *b)
{
	free(b->data);
	*b = (struct hp_buf){ 0 };
}

int hp_grow(void *arrp, size_t *cap, size_t nr, size_t size, size_t first)
{
	const size_t n = *cap ? 2 * *cap : first;
	void *arr = NULL;

	if (nr < *cap)
		return 0;
	if (n < *cap || !n || n > SIZE_MAX / size)
		return -ENOMEM;
	/* through memcpy: *arrp is a T *, read and written as a void * */
	memcpy(&arr, arrp, sizeof(arr));
	arr = realloc(arr, n * size);
	if (!arr)
		return -ENOMEM;
	memcpy(arrp, &arr, sizeof(arr));
	*cap = n;
	return 0;
}

int hp_read_file(const char *path, size_t max, uint8_t **out, size_t *len)
{
	uint8_t *data = NULL;
	struct stat st;
	size_t done = 0;
	int fd, rc = 0;

	/* O_NONBLOCK: opening a FIFO must not wait for a writer. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		goto out_close;
	}
	if ((uint64_t)st.st_size > max) {
		rc = -HP_E_TOOBIG;
		goto out_close;
	}
	data = malloc((size_t)st.st_size + 1);
	if (!data) {
		rc = -ENOMEM;
		goto out_close;
	}
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, data + done, (size_t)st.st_size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			free(data);
			goto out_close;
		}
		done += (size_t)n;
	}
	data[done] = 0;
	*out = data;
	*len = done;
out_close:
	close(fd);
	return rc;
}

int hp_open_regular(const char *path, struct stat *st)
{
	const int at = open(path, O_PATH | O_CLOEXEC);
	char self[48];
	int fd = -EINVAL;

	if (at < 0)
		return -errno;
	if (fstat(at, st) < 0) {
		fd = -errno;
	} else if (S_ISREG(st->st_mode)) {
		snprintf(self, sizeof(self), "/proc/self/fd/%d", at);
		/* O_NONBLOCK: a file someone holds a lease on (any user
		 * may lease his own) would block the open until the lease
		 * breaks, 45 s by default, with hpatchd's loop in it. */
		fd = open(self, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		if (fd < 0)
			fd = -errno;
	}
	close(at);
	return fd;
}

/* 0: not asked yet in this process (a fork's child starts so). */
static pid_t self_pid;

static void forget_self_pid(void)
{
	__atomic_store_n(&self_pid, 0, __ATOMIC_RELAXED);
}

static void watch_forks(void)
{
	pthread_atfork(NULL, NULL, forget_self_pid);
}

pid_t hp_self_pid(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pid_t pid = __atomic_load_n(&self_pid, __ATOMIC_RELAXED);

	if (pid)
		return pid;
	pthread_once(&once, watch_forks);
	pid = getpid();
	__atomic_store_n(&self_pid, pid, __ATOMIC_RELAXED);
	return pid;
}

int hp_write_file(const char *path, const void *p, size_t len,
		  unsigned int mode, unsigned int flags)
{
	char *tmp = NULL;
	size_t done = 0;
	int fd, rc = 0;

	/* A name of its own (mkostemp: O_EXCL, random letters): a writer
	 * killed mid-write leaves its file, and one named by the pid alone
	 * stood in the way of every later writer of that pid (EEXIST): a
	 * daemon started at each boot in the same order gets the same pid. */
	if (asprintf(&tmp, "%s.tmp.%d.XXXXXX", path, (int)hp_self_pid()) < 0)
		return -ENOMEM;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		goto out_free;
	}
	if (fchmod(fd, mode) < 0) {
		rc = -errno;
		goto out_unlink;
	}
	while (done < len) {
		ssize_t n = write(fd, (const uint8_t *)p + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			goto out_unlink;
		}
		done += (size_t)n;
	}
	if (!(flags & HP_WRITE_NOSYNC) && fsync(fd) < 0) {
		rc = -errno;
		goto out_unlink;
	}
	close(fd);
	fd = -1;
	if (flags & HP_WRITE_EXCL) {
		/* link() fails with EEXIST instead of replacing the target. */
		if (link(tmp, path) < 0)
			rc = -errno;
		unlink(tmp);
		goto out_free;
	}
	if (rename(tmp, path) < 0) {
		rc = -errno;
		goto out_unlink;
	}
	goto out_free;
out_unlink:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
out_free:
	free(tmp);
	return rc;
}

/* The value of hex digit @c, or -1. */
static inline int hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20; /* lowercase */
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

const char *hp_parse_num(const char *p, int base, char sep,
			 unsigned long long *v)
{
	unsigned long long n = 0;
	const char *q = p;
	int d;

	/* (By hand, no division per digit, no locale: strtoull and sscanf
	 * made this a few percent of a worker's CPU time, on every line of
	 * every map read.) */
	if (base == 16) {
		for (; (d = hex_digit((unsigned char)*q)) >= 0; q++) {
			if (n >> 60)
				return NULL; /* a 65th bit */
			n = n << 4 | (unsigned int)d;
		}
	} else {
		for (; *q >= '0' && *q <= '9'; q++)
			if (__builtin_mul_overflow(n, 10ULL, &n) ||
			    __builtin_add_overflow(
				    n, (unsigned long long)(*q - '0'), &n))
				return NULL;
	}
	if (q == p || (sep ? *q != sep : *q && *q != ' ' && *q != '\n'))
		return NULL;
	*v = n;
	return *q ? q + 1 : q;
}

bool hp_stat_field(const char *stat, int field, unsigned long long *v)
{
	const char *p = strrchr(stat, ')');

	if (!p || p[1] != ' ' || field < 3)
		return false;
	for (p += 2; field > 3 && p; field--) {
		p = strchr(p, ' ');
		p = p ? p + 1 : NULL;
	}
	return p && hp_parse_num(p, 10, 0, v);
}

uint32_t hp_note_build_id(const uint8_t *notes, size_t len, uint8_t *id,
			  size_t cap)
{
	size_t off = 0;

	while (off + sizeof(Elf64_Nhdr) <= len) {
		Elf64_Nhdr nh;
		size_t name, desc, next;

		memcpy(&nh, notes + off, sizeof(nh));
		name = off + sizeof(nh);
		desc = name + HP_ALIGN_UP((size_t)nh.n_namesz, 4U);
		next = desc + HP_ALIGN_UP((size_t)nh.n_descsz, 4U);
		if (next > len)
			break;
		if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
		    !memcmp(notes + name, "GNU", 4) && nh.n_descsz <= cap) {
			memcpy(id, notes + desc, nh.n_descsz);
			return nh.n_descsz;
		}
		off = next;
	}
	return 0;
}

void hp_hex(char *out, const uint8_t *p, size_t len)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * len] = 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int hp_unhex(uint8_t *out, size_t len, const char *hex)
{
	for (size_t i = 0; i < len; i++) {
		int hi = hexval(hex[2 * i]);
		int lo = hi < 0 ? -1 : hexval(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}
