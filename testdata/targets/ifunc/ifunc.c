/*
 * IFUNC target (tests/e2e/ifunc.sh): v2's fix of describe() calls memcpy,
 * strlen, strchr and strstr, libc IFUNCs v1 never called (v1 has no PLT
 * entry or GOT slot for any of them), so the patch binds them by name at
 * apply time. Prints "ready pid=N", then "result V TEXT" whenever
 * describe()'s answer changes. With "forge", a hostile target: its copy
 * of libc's dynamic symbol table says strstr's resolver is _exit.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* "/.../libc.so.6", without calling strstr or strlen (v1 must not) */
static int is_libc(const char *path)
{
	const char *base = path;

	for (const char *p = path; *p; p++)
		if (*p == '/')
			base = p + 1;
	return !strcmp(base, "libc.so.6");
}

/* Point the IFUNC symbol @victim of libc's .dynsym, in this process's
 * memory, at @target's code. */
static int forge_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	const char *const *names = arg;
	const ElfW(Dyn) *dyn = NULL;
	ElfW(Sym) *symtab = NULL, *victim = NULL, *target = NULL;
	const char *strtab = NULL;

	(void)size;
	if (!is_libc(info->dlpi_name))
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++)
		if (info->dlpi_phdr[i].p_type == PT_DYNAMIC)
			dyn = (const void *)(info->dlpi_addr +
					     info->dlpi_phdr[i].p_vaddr);
	for (; dyn && dyn->d_tag != DT_NULL; dyn++) {
		if (dyn->d_tag == DT_SYMTAB)
			symtab = (void *)dyn->d_un.d_ptr;
		if (dyn->d_tag == DT_STRTAB)
			strtab = (const char *)dyn->d_un.d_ptr;
	}
	/* in libc, .dynstr follows .dynsym */
	for (ElfW(Sym) *s = symtab; s && (const char *)(s + 1) <= strtab; s++) {
		if (!strcmp(strtab + s->st_name, names[0]))
			victim = s;
		if (!strcmp(strtab + s->st_name, names[1]))
			target = s;
	}
	if (!victim || !target)
		return -1;
	uintptr_t page = (uintptr_t)victim & ~(uintptr_t)4095;
	if (mprotect((void *)page, 8192, PROT_READ | PROT_WRITE))
		return -1;
	victim->st_value = target->st_value;
	return 1;
}

static const char *volatile input = "key=value;rest";
static volatile int out_size = 64; /* unknown to the compiler */

/* noipa: main, which never returns, must not change with describe (IPA-RA) */
__attribute__((noipa)) int describe(const char *s, char *out, int cap)
{
#if V == 1
	int n = 0;

	/* a loop gcc does not turn into strchr or memcpy */
	while (s[n] && s[n] != '=' && n < cap - 1) {
		out[n] = (char)(s[n] ^ 0x20);
		n++;
	}
	out[n] = 0;
	return 1;
#else
	static char scratch[64];
	const char *eq = strchr(s, '=');
	const char *val = eq ? eq + 1 : s;
	size_t len = strlen(val);

	if (len >= (size_t)cap) /* cap <= sizeof(scratch): see main */
		return 4;
	/* with _FORTIFY_SOURCE, scratch's known size makes it __memcpy_chk */
	memcpy(scratch, val, len + 1);
	memcpy(out, scratch, len + 1);
	return strstr(s, "rest") ? 2 : 3;
#endif
}

int main(int argc, char **argv)
{
	const char *names[] = { "strstr", "_exit" };
	char out[64];
	int last = 0;

	if (argc > 1 && !strcmp(argv[1], "forge") &&
	    dl_iterate_phdr(forge_cb, names) != 1)
		return 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready pid=%d\n", (int)getpid());
	for (;;) {
		const int v = describe(input, out, out_size);

		if (v != last)
			printf("result %d %s\n", v, out);
		last = v;
		usleep(10000);
	}
}
