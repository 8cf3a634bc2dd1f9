/*
 * Small helpers needed by more than one component: a growable byte buffer
 * and array, whole-file reads and atomic writes, hex and little-endian
 * encoding, the monotonic clock, our own pid.
 */
#ifndef HP_UTIL_H
#define HP_UTIL_H

#include <endian.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#define HP_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define HP_ALIGN_UP(x, a) (((x) + ((a)-1)) & ~((__typeof__(x))(a)-1))

/* Growable buffer; zero-initialise, then hp_buf_release() when done. */
struct hp_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

/* Return: 0 or -ENOMEM. */
int hp_buf_reserve(struct hp_buf *b, size_t extra)
	__attribute__((warn_unused_result));
int hp_buf_append(struct hp_buf *b, const void *p, size_t n)
	__attribute__((warn_unused_result));
/* Appends zero bytes up to a multiple of @align. */
int hp_buf_align(struct hp_buf *b, size_t align)
	__attribute__((warn_unused_result));
void hp_buf_release(struct hp_buf *b);

/*
 * hp_grow() - room for one more element in a malloc'd array: when @nr has
 * reached *@cap, the array *@arrp (a pointer to the array's pointer) is
 * reallocated to twice *@cap elements of @size bytes, or @first when it
 * has none, and *@cap updated. On failure the array is left as it was.
 * Return: 0 or -ENOMEM.
 */
int hp_grow(void *arrp, size_t *cap, size_t nr, size_t size, size_t first)
	__attribute__((warn_unused_result));

/*
 * hp_read_file() - read a whole regular file of at most @max bytes.
 * On success *@out is malloc'd (caller frees) and NUL-terminated past *@len.
 * Return: 0, -errno, or -HP_E_TOOBIG.
 */
int hp_read_file(const char *path, size_t max, uint8_t **out, size_t *len)
	__attribute__((warn_unused_result));
/*
 * hp_write_file() - write @len bytes to @path through a temporary file and
 * rename(), so readers never see a partial file. @mode applies to new files;
 * @flags: HP_WRITE_EXCL, an existing @path is an error (-EEXIST);
 * HP_WRITE_NOSYNC, no fsync (a snapshot rewritten often, that a crash may
 * lose: fsync would wait for the disk on every rewrite).
 */
enum hp_write_flags {
	HP_WRITE_EXCL = 1 << 0,
	HP_WRITE_NOSYNC = 1 << 1,
};
int hp_write_file(const char *path, const void *p, size_t len,
		  unsigned int mode, unsigned int flags)
	__attribute__((warn_unused_result));

/* Lowercase hex of @len bytes into @out (2*len+1 bytes). */
void hp_hex(char *out, const uint8_t *p, size_t len);
/*
 * hp_note_build_id() - the GNU build-id in @len bytes of ELF notes (a
 * PT_NOTE segment's content), copied to @id (@cap bytes at most).
 * Return: its length, or 0 when there is none (or it exceeds @cap).
 */
uint32_t hp_note_build_id(const uint8_t *notes, size_t len, uint8_t *id,
			  size_t cap);
/* Parse exactly 2*@len hex digits. Return: 0 or -EINVAL. */
int hp_unhex(uint8_t *out, size_t len, const char *hex);
/*
 * hp_parse_num() - the unsigned number in @base (10 or 16), digits only
 * (no sign, space or "0x"), at @p, into *@v: a field of a line of /proc
 * (maps), parsed by hand. Ended by @sep, or with @sep 0 by a space, a
 * newline or the end of the string. Return: past @sep (with @sep 0: past
 * the space or newline, at the end), or NULL: no digit, another character
 * after them, or more than 64 bits.
 */
const char *hp_parse_num(const char *p, int base, char sep,
			 unsigned long long *v);

/*
 * hp_stat_field() - field @field (numbered as in proc(5): 3 the state, 9
 * the flags, 22 the start time) of a /proc/PID/stat line @stat, a number,
 * into *@v. The command name (field 2) may hold spaces and ')': fields
 * are counted after its last ')'. Return: whether read.
 */
bool hp_stat_field(const char *stat, int field, unsigned long long *v);

/*
 * Little-endian fields at any alignment: memcpy of the value in file byte
 * order, which gcc turns into one move (a loop of byte stores is not merged
 * at -O2, and cost the relocation engine 3 cycles a field).
 */
static inline void hp_put_le16(uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, sizeof(v));
}

static inline void hp_put_le32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

static inline void hp_put_le64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, sizeof(v));
}

static inline uint16_t hp_get_le16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return le16toh(v);
}

static inline uint32_t hp_get_le32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static inline uint64_t hp_get_le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

struct stat;
/*
 * hp_open_regular() - open @path for reading, only if it is a regular file
 * (*@st: its stat). The path a process's map names may be a device node
 * (a GPU's, a UIO device's), whose very open runs its driver, or be made
 * one meanwhile by whoever owns its directory: it is opened O_PATH, which
 * runs nothing, and reopened through /proc/self/fd once it proved regular.
 * Return: an fd, -EINVAL (not a regular file), or -errno.
 */
int hp_open_regular(const char *path, struct stat *st);

/*
 * hp_self_pid() - the calling process's pid, asked of the kernel once per
 * process (glibc caches it no more): hpatchd asked at each apply, two to
 * three times, and once per /proc entry of each scan. A child of fork()
 * asks again (pthread_atfork), so `hpatch apply --all`'s workers know
 * their own; a child of a raw clone() or vfork() must not call it.
 */
pid_t hp_self_pid(void);

/* CLOCK_MONOTONIC in microseconds. */
static inline uint64_t hp_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/*
 * Is a unix time @expires (0: never) past? Read with CLOCK_REALTIME, as
 * date(1) reads it: time(2) answers from the last timer tick and stays a
 * second behind for up to a tick after the second turns, so a script that
 * saw `date +%s` pass the expiry could still find the patch taken.
 */
static inline bool hp_expired(uint64_t expires)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return expires && (uint64_t)ts.tv_sec > expires;
}

#endif
