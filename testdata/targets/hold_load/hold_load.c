/*
 * An LD_AUDIT library that holds the dynamic linker while it loads: in
 * la_objopen of the object whose name contains $HP_HOLD_AT ("@main": the
 * program itself, seen before ld.so maps any library it needs), it
 * creates $HP_HOLD_FILE.held and waits, in nanosleep, until
 * $HP_HOLD_FILE.go exists. The object is then mapped and not relocated,
 * and the objects after it not mapped at all: a process caught as ld.so
 * starts it, or inside a dlopen (tests/e2e/unwind_loading.sh).
 *
 * No C library: an audit library gets a namespace of its own, and a libc
 * loaded there would be a second one in the process's map. So raw system
 * calls, and the environment read from /proc/self/environ.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>

#define HOLD_ENV_MAX 16384

static long sys3(long nr, long a, long b, long c)
{
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c)
			 : "rcx", "r11", "memory");
	return ret;
}

static char env[HOLD_ENV_MAX];
static long env_len = -1;

/* $NAME, or NULL. */
static const char *get_env(const char *name)
{
	if (env_len < 0) {
		long fd = sys3(SYS_open, (long)"/proc/self/environ", 0, 0), n;

		env_len = 0;
		while (fd >= 0 && env_len < HOLD_ENV_MAX - 1 &&
		       (n = sys3(SYS_read, fd, (long)(env + env_len),
				 HOLD_ENV_MAX - 1 - env_len)) > 0)
			env_len += n;
		if (fd >= 0)
			sys3(SYS_close, fd, 0, 0);
		env[env_len] = 0;
	}
	for (long i = 0; i < env_len; i++) {
		const char *p = env + i, *q = name;

		while (*q && *p == *q)
			p++, q++;
		if (!*q && *p == '=')
			return p + 1;
		while (i < env_len && env[i])
			i++;
	}
	return NULL;
}

static int contains(const char *s, const char *sub)
{
	for (; *s; s++) {
		const char *p = s, *q = sub;

		while (*q && *p == *q)
			p++, q++;
		if (!*q)
			return 1;
	}
	return 0;
}

/* @base + @suffix in @out (of @cap bytes). */
static void path_of(char *out, size_t cap, const char *base, const char *suffix)
{
	size_t n = 0;

	for (; *base && n + 1 < cap; base++)
		out[n++] = *base;
	for (; *suffix && n + 1 < cap; suffix++)
		out[n++] = *suffix;
	out[n] = 0;
}

static void hold(const char *file)
{
	const struct {
		long sec, nsec;
	} tick = { 0, 10 * 1000 * 1000 };
	char held[512], go[512];
	long fd;

	path_of(held, sizeof(held), file, ".held");
	path_of(go, sizeof(go), file, ".go");
	fd = sys3(SYS_open, (long)held, 0101 /* O_WRONLY|O_CREAT */, 0644);
	if (fd >= 0)
		sys3(SYS_close, fd, 0, 0);
	while (sys3(SYS_access, (long)go, 0, 0) != 0)
		sys3(SYS_nanosleep, (long)&tick, 0, 0);
}

unsigned int la_version(unsigned int version)
{
	return version;
}

unsigned int la_objopen(struct link_map *map, Lmid_t lmid, uintptr_t *cookie)
{
	const char *at = get_env("HP_HOLD_AT"), *file = get_env("HP_HOLD_FILE");
	const char *name = map->l_name ? map->l_name : "";

	(void)lmid;
	(void)cookie;
	if (!at || !at[0] || !file)
		return 0;
	/* "@main": the program, the one object with no name. */
	if (at[0] == '@' ? !name[0] : contains(name, at))
		hold(file);
	return 0;
}
