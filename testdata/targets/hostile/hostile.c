/*
 * Helpers for the hostile-host tests (issue 14): each mode does one thing a
 * production host may do next to a target, prints "hostile: ready pid=N"
 * and waits to be killed.
 *   trace PID     hold PID with PTRACE_SEIZE (a debugger, another patcher)
 *   mapfile PATH  map PATH read-only (a Python mmap, libelf, perf, gdb)
 *   slowload LIB MS  open LIB, wait MS, then map its segments as ld.so
 *                 does and close it (a loader slow between the open and
 *                 the mapping, as ld.so is on a loaded host)
 *   forge N       plant N fake patch records in its own memory, each as
 *                 large as the format allows, with escape sequences in
 *                 every name and nothing redirected
 *   sigqueue PID N  send PID N SIGRTMIN+1 signals with values 1..N, as
 *                 fast as its queue takes them, then print "sent N"
 *   seccomp RULE PROG ARGS...  run PROG under a seccomp filter: RULE is
 *                 kill-process or kill-thread (for an mmap with
 *                 MAP_FIXED_NOREPLACE, which only hpatch makes), mdwe
 *                 (systemd's MemoryDenyWriteExecute=yes: its seccomp
 *                 filter, EPERM for mmap with PROT_WRITE|PROT_EXEC,
 *                 mprotect and pkey_mprotect with PROT_EXEC, shmat with
 *                 SHM_EXEC; and the kernel's PR_SET_MDWE where it has
 *                 it, which systemd uses too: no mapping gains exec),
 *                 or other (kill on kexec_load, a call hpatch never
 *                 makes)
 */
#define _GNU_SOURCE
#include <elf.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/runtime_int.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#define ARG_LO(n) (offsetof(struct seccomp_data, args) + 8 * (n))

/* Every filter's first 4 instructions: other architectures pass, then
 * the system call's number is loaded. */
#define FILTER_PROLOGUE                                                       \
	BPF_STMT(BPF_LD | BPF_W | BPF_ABS,                                    \
		 offsetof(struct seccomp_data, arch)),                        \
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0), \
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),                 \
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,                            \
			 offsetof(struct seccomp_data, nr))

/* Install filter @f of @n instructions on this process. */
static int install(struct sock_filter *f, size_t n)
{
	struct sock_fprog prog = { .len = (unsigned short)n, .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		return -1;
	return 0;
}

#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#define PR_MDWE_REFUSE_EXEC_GAIN 1
#endif

/* Show the rules hold here: what hpatch must not do is refused. */
static int mdwe_proof(void)
{
	void *p =
		mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	void *wx = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	const int rc =
		p == MAP_FAILED ? -1 : mprotect(p, 4096, PROT_READ | PROT_EXEC);
	const int err = errno;

	if (wx != MAP_FAILED || rc == 0 || err != EPERM) {
		fprintf(stderr, "hostile: mdwe does not hold\n");
		return -1;
	}
	printf("hostile: mmap(PROT_WRITE|PROT_EXEC): refused; "
	       "mprotect(PROT_EXEC): refused (EPERM)\n");
	fflush(stdout);
	return munmap(p, 4096);
}

/* systemd's MemoryDenyWriteExecute=yes (seccomp-util.c): each rule masks
 * its argument, so mmap is refused only with both PROT_WRITE and
 * PROT_EXEC (JSET on each bit in turn). Then PR_SET_MDWE, where the
 * kernel has it (6.3): as systemd does on such kernels. */
static int mdwe(void)
{
	/* Jumps count from the next instruction: 15 allows, 16 refuses. */
	struct sock_filter f[] = {
		FILTER_PROLOGUE,
		/* 4: mmap with PROT_WRITE and PROT_EXEC */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mmap, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(2)),
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, PROT_WRITE, 0, 8),
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, PROT_EXEC, 8, 7),
		/* 8: mprotect, pkey_mprotect with PROT_EXEC */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mprotect, 1, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_pkey_mprotect, 0, 2),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(2)),
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, PROT_EXEC, 4, 3),
		/* 12: shmat with SHM_EXEC */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_shmat, 0, 2),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(2)),
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0100000 /* SHM_EXEC */, 1,
			 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
	};
	if (install(f, sizeof(f) / sizeof(f[0])))
		return -1;
	if (prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) &&
	    errno != EINVAL)
		return -1;
	return mdwe_proof();
}

/* Install the filter RULE names, then exec @argv. */
static int seccomp_exec(const char *rule, char **argv)
{
	long nr = SYS_mmap, arg = 3, bits = 0x100000; /* MAP_FIXED_NOREPLACE */
	unsigned int action = SECCOMP_RET_KILL_PROCESS;

	if (!strcmp(rule, "kill-thread")) {
		action = SECCOMP_RET_KILL_THREAD;
	} else if (!strcmp(rule, "mdwe")) {
		if (mdwe())
			return -1;
		execv(argv[0], argv);
		return -1;
	} else if (!strcmp(rule, "other")) {
		nr = SYS_kexec_load, arg = 0, bits = 0;
	} else if (strcmp(rule, "kill-process")) {
		return -1;
	}
	struct sock_filter f[] = {
		FILTER_PROLOGUE,
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned int)nr, 0, 4),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(arg)),
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, (unsigned int)bits, 1,
			 bits ? 0 : 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, action),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	if (install(f, sizeof(f) / sizeof(f[0])))
		return -1;
	execv(argv[0], argv);
	return -1;
}

/* One region that claims to be a patch: hpatch must not believe it. */
static int forge(void)
{
	const uint32_t nr = 65535;
	const size_t hdr = (sizeof(struct hp_rt_header) +
			    nr * sizeof(struct hp_rt_func) + 4095) &
			   ~(size_t)4095;
	/* A page more, left inaccessible: regions side by side would merge
	 * into one mapping. */
	uint8_t *p = mmap(NULL, hdr + 8192, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct hp_rt_header *h = (struct hp_rt_header *)p;
	struct hp_rt_func *f = (struct hp_rt_func *)(p + sizeof(*h));

	if (p == MAP_FAILED)
		return -1;
	memcpy(h->magic, HP_RT_MAGIC, sizeof(h->magic));
	h->version = HP_RT_VERSION;
	h->header_size = (uint32_t)hdr;
	h->region_size = hdr + 4096;
	h->image_addr = (uint64_t)(uintptr_t)p + hdr;
	h->nr_funcs = nr;
	h->sequence = 99;
	snprintf(h->patch_id, sizeof(h->patch_id),
		 "\033[2J\033]0;owned\007fake");
	snprintf(h->module, sizeof(h->module), "/usr/sbin/sshd\033[8m");
	for (uint32_t i = 0; i < nr; i++)
		memcpy(f[i].name, "f\033[1mx", 7);
	return mprotect(p, hdr + 4096, PROT_READ)
		       ?: mprotect(p + hdr + 4096, 4096, PROT_NONE);
}

/* Map @path as ld.so does (a reservation, each PT_LOAD over it), @ms
 * after opening it; then close it. Nothing is relocated or run. */
static int slowload(const char *path, int ms)
{
	const struct timespec nap = { ms / 1000, (ms % 1000) * 1000000L };
	const int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint64_t lo = UINT64_MAX, hi = 0;
	Elf64_Phdr ph[16];
	Elf64_Ehdr eh;
	uint8_t *base = NULL;

	if (fd < 0 || pread(fd, &eh, sizeof(eh), 0) != sizeof(eh) ||
	    eh.e_phnum > 16 ||
	    pread(fd, ph, eh.e_phnum * sizeof(ph[0]), (off_t)eh.e_phoff) !=
		    (ssize_t)(eh.e_phnum * sizeof(ph[0])))
		return -1;
	nanosleep(&nap, NULL);
	for (int i = 0; i < eh.e_phnum; i++) {
		if (ph[i].p_type != PT_LOAD)
			continue;
		if ((ph[i].p_vaddr & ~4095ULL) < lo)
			lo = ph[i].p_vaddr & ~4095ULL;
		if (ph[i].p_vaddr + ph[i].p_memsz > hi)
			hi = ph[i].p_vaddr + ph[i].p_memsz;
	}
	base = mmap(NULL, hi - lo, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		    0);
	if (base == MAP_FAILED)
		return -1;
	for (int i = 0; i < eh.e_phnum; i++) {
		const uint64_t page = ph[i].p_vaddr & ~4095ULL;
		const int prot = (ph[i].p_flags & PF_R ? PROT_READ : 0) |
				 (ph[i].p_flags & PF_W ? PROT_WRITE : 0) |
				 (ph[i].p_flags & PF_X ? PROT_EXEC : 0);

		if (ph[i].p_type == PT_LOAD &&
		    mmap(base + page - lo,
			 ph[i].p_filesz + (ph[i].p_vaddr & 4095), prot,
			 MAP_PRIVATE | MAP_FIXED, fd,
			 (off_t)(ph[i].p_offset & ~4095ULL)) == MAP_FAILED)
			return -1;
	}
	return close(fd);
}

static int usage(void)
{
	fprintf(stderr, "usage: hostile trace PID | mapfile PATH | forge N | "
			"slowload LIB MS\n");
	return 2;
}

int main(int argc, char **argv)
{
	if (argc > 3 && !strcmp(argv[1], "seccomp")) {
		seccomp_exec(argv[2], argv + 3);
		perror("hostile: seccomp");
		return 1;
	}
	if (argc == 4 && !strcmp(argv[1], "sigqueue")) {
		const pid_t pid = atoi(argv[2]);
		const int n = atoi(argv[3]);

		for (int i = 1; i <= n;) {
			if (!sigqueue(pid, SIGRTMIN + 1,
				      (union sigval){ .sival_int = i }))
				i++;
			else if (errno == EAGAIN)
				usleep(100); /* its queue is full */
			else
				return perror("hostile: sigqueue"), 1;
		}
		printf("sent %d\n", n);
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "slowload")) {
		if (slowload(argv[2], atoi(argv[3]))) {
			perror("hostile: slowload");
			return 1;
		}
	} else if (argc != 3) {
		return usage();
	} else if (!strcmp(argv[1], "trace")) {
		if (ptrace(PTRACE_SEIZE, atoi(argv[2]), 0, 0) < 0) {
			perror("hostile: PTRACE_SEIZE");
			return 1;
		}
	} else if (!strcmp(argv[1], "mapfile")) {
		struct stat st;
		int fd = open(argv[2], O_RDONLY);
		void *p = NULL;

		if (fd < 0 || fstat(fd, &st) < 0) {
			perror("hostile: open");
			return 1;
		}
		p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd,
			 0);
		if (p == MAP_FAILED) {
			perror("hostile: mmap");
			return 1;
		}
	} else if (!strcmp(argv[1], "forge")) {
		for (int i = 0; i < atoi(argv[2]); i++)
			if (forge() < 0) {
				perror("hostile: forge");
				return 1;
			}
	} else {
		return usage();
	}
	printf("hostile: ready pid=%d\n", (int)getpid());
	fflush(stdout);
	for (;;)
		pause();
}
