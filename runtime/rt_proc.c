/*
 * The target seen through /proc: its memory map, bulk reads and writes of
 * its memory (/proc/PID/mem writes work on read-only pages, unlike
 * process_vm_writev), its modules identified by GNU build-id read from its
 * own memory (the file on disk may have been replaced since it started),
 * and a free hole within rel32 reach of a module.
 */
#include "runtime/runtime_int.h"
#include "common/hp_arch_x86_64.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <dirent.h>
#include <sched.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define HP_LOG_PREFIX "rt: "

/*
 * A thread of @pid's that is not exiting, in *@tid (@pid if none is).
 * Not exiting, rather than not a zombie: a leader leaving by pthread_exit
 * lets go of its memory (empty maps, no exe) well before it is a zombie,
 * for as long as closing its own files takes (milliseconds for thousands,
 * and any time at all on a loaded host), while its threads run on.
 * Return: whether one was found.
 */
static bool find_live_tid(pid_t pid, pid_t *tid)
{
	pid_t *tids = NULL;
	size_t nr = 0;
	bool found = false;

	*tid = pid;
	if (hp_task_live(pid))
		return true;
	if (hp_proc_list_tasks(pid, &tids, &nr))
		return false;
	for (size_t i = 0; i < nr && !found; i++)
		if (hp_task_live(tids[i])) {
			*tid = tids[i];
			found = true;
		}
	free(tids);
	return found;
}

pid_t hp_proc_live_tid(pid_t pid)
{
	pid_t tid;

	find_live_tid(pid, &tid);
	return tid;
}

bool hp_proc_gone(pid_t pid)
{
	return hp_task_gone(hp_proc_live_tid(pid));
}

bool hp_proc_execd(const struct hp_proc *proc)
{
	uint8_t b;

	/* /proc/PID/mem, once open, reads the memory it was opened on: an
	 * exec leaves it reading nothing. */
	return proc->nr_maps && !hp_proc_gone(proc->pid) &&
	       pread(proc->mem_fd, &b, 1, (off_t)proc->maps[0].start) != 1;
}

/* Open @proc->tid's memory and @proc's map. */
static int open_tid(struct hp_proc *proc, bool quiet)
{
	const pid_t pid = proc->pid;
	char path[64];
	int rc;

	snprintf(path, sizeof(path), "/proc/%d/mem", (int)proc->tid);
	proc->mem_fd = open(path, O_RDWR | O_CLOEXEC);
	if (proc->mem_fd < 0) {
		rc = -errno;

		if (quiet)
			return rc == -ENOENT ? -HP_E_GONE : rc;
		if (rc == -ENOENT)
			return hp_error(-HP_E_GONE, "pid %d: no such process",
					(int)pid);
		hp_error_rc(rc, "pid %d: cannot open '%s'", (int)pid, path);
		if (rc == -EACCES || rc == -EPERM)
			hp_hint("run as root or as the process's user; check "
				"/proc/sys/kernel/yama/ptrace_scope");
		return rc;
	}
	/* Exited since (a short-lived process): nothing stays open. */
	rc = hp_proc_read_maps(proc);
	if (rc)
		hp_proc_close(proc);
	return rc;
}

int hp_proc_open(pid_t pid, struct hp_proc *proc, bool quiet)
{
	*proc = (struct hp_proc){ .pid = pid, .mem_fd = -1 };
	/* A zombie (every thread exited, the parent has not reaped it) keeps
	 * its /proc entry but no memory: gone, like a process reaped. */
	if (!find_live_tid(pid, &proc->tid)) {
		if (quiet)
			return -HP_E_GONE;
		if (kill(pid, 0) < 0 && errno == ESRCH)
			return hp_error(-HP_E_GONE, "pid %d: no such process",
					(int)pid);
		return hp_error(-HP_E_GONE,
				"pid %d: the process has exited (a zombie its "
				"parent has not reaped)",
				(int)pid);
	}
	return open_tid(proc, quiet);
}

int hp_proc_open_live(pid_t pid, struct hp_proc *proc, bool quiet)
{
	*proc = (struct hp_proc){ .pid = pid, .tid = pid, .mem_fd = -1 };
	/* Its map read after the caller's check shows the leader had its
	 * memory all through it; none (it exited since, or the process
	 * did): asked the long way, with its messages. */
	if (!open_tid(proc, true))
		return 0;
	return hp_proc_open(pid, proc, quiet);
}

void hp_proc_close(struct hp_proc *proc)
{
	if (proc->mem_fd >= 0)
		close(proc->mem_fd);
	free(proc->maps);
	proc->maps = NULL;
	proc->nr_maps = 0;
	proc->mem_fd = -1;
}

int hp_read_proc_file(const char *path, char **out, size_t *len)
{
	const int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t cap = 0, done = 0;
	char *buf = NULL;
	int rc = 0;

	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n;

		if (cap - done < 65536 + 1) {
			char *nb = realloc(buf, cap + 65536 + 1);

			if (!nb) {
				rc = -ENOMEM;
				break;
			}
			buf = nb;
			cap += 65536 + 1;
		}
		n = read(fd, buf + done, cap - done - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			rc = -errno;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	close(fd);
	if (rc) {
		free(buf);
		return rc;
	}
	buf[done] = 0;
	*out = buf;
	*len = done;
	return 0;
}

/*
 * One line of /proc/PID/maps, "START-END PERMS OFFSET MAJ:MIN INODE
 * [PATH]". Return: false if it is not one. By hand: sscanf was a tenth of
 * hpatch's own CPU time in a run over many processes, whose every map
 * (and, for --all, every process's of the host) is read.
 */
static bool parse_map_line(const char *line, struct hp_map *m)
{
	unsigned long long start, end, off, major, minor, inode;
	const char *p = line, *perms = NULL;
	size_t len;

	p = hp_parse_num(p, 16, '-', &start);
	p = p ? hp_parse_num(p, 16, ' ', &end) : NULL;
	if (!p || strnlen(p, 5) < 5 || p[4] != ' ')
		return false;
	perms = p;
	p = hp_parse_num(p + 5, 16, ' ', &off);
	p = p ? hp_parse_num(p, 16, ':', &major) : NULL;
	p = p ? hp_parse_num(p, 16, ' ', &minor) : NULL;
	p = p ? hp_parse_num(p, 10, 0, &inode) : NULL;
	if (!p || major > 0xffffffffu || minor > 0xffffffffu)
		return false;
	*m = (struct hp_map){ .start = start,
			      .end = end,
			      .offset = off,
			      .dev = (uint64_t)major << 32 | minor,
			      .inode = inode };
	m->prot = (perms[0] == 'r' ? PROT_READ : 0) |
		  (perms[1] == 'w' ? PROT_WRITE : 0) |
		  (perms[2] == 'x' ? PROT_EXEC : 0);
	m->shared = perms[3] == 's';
	while (*p == ' ')
		p++;
	len = strnlen(p, sizeof(m->path) - 1); /* (longer: cut, as ever) */
	memcpy(m->path, p, len);
	m->path[len] = 0;
	return true;
}

/* Read @proc's map; @quiet: no message (a scan of every pid). */
/* (*@vanished, if asked: whether the map was gone, not empty.) */
static int read_maps(struct hp_proc *proc, bool quiet, bool *vanished)
{
	char path[64], *text = NULL, *line = NULL;
	struct hp_map *maps = NULL;
	size_t nr = 0, cap = 0, len = 0;
	int rc;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)proc->tid);
	rc = hp_read_proc_file(path, &text, &len);
	if (vanished)
		*vanished = rc == -ENOENT || rc == -ESRCH;
	if (rc == -ENOENT || rc == -ESRCH)
		return -HP_E_GONE;
	if (rc)
		return quiet ? rc : hp_error_rc(rc, "'%s'", path);
	for (line = text; line < text + len;) {
		char *eol = strchr(line, '\n');
		struct hp_map m;

		if (eol)
			*eol = 0;
		if (parse_map_line(line, &m)) {
			if (hp_grow(&maps, &cap, nr, sizeof(*maps), 64)) {
				free(maps);
				free(text);
				return -ENOMEM;
			}
			maps[nr++] = m;
		}
		line = eol ? eol + 1 : text + len;
	}
	free(text);
	free(proc->maps);
	proc->maps = maps;
	proc->nr_maps = nr;
	return nr ? 0 : -HP_E_GONE;
}

int hp_proc_read_maps(struct hp_proc *proc)
{
	return read_maps(proc, false, NULL);
}

/* One loop for both directions: short transfers continue, EINTR retries. */
static int proc_io(const struct hp_proc *proc, hp_raddr_t addr, uint8_t *buf,
		   size_t len, bool write)
{
	size_t done = 0;

	while (done < len) {
		const off_t at = (off_t)(addr + done);
		ssize_t n =
			write ? pwrite(proc->mem_fd, buf + done, len - done, at)
			      : pread(proc->mem_fd, buf + done, len - done, at);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == ESRCH)
			return -HP_E_GONE;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += (size_t)n;
	}
	return 0;
}

static int mem_read(const struct hp_proc *proc, hp_raddr_t addr, void *buf,
		    size_t len)
{
	return proc_io(proc, addr, buf, len, false);
}

static int mem_write(const struct hp_proc *proc, hp_raddr_t addr,
		     const void *buf, size_t len)
{
	/* pwrite does not modify the buffer: the cast only serves proc_io */
	return proc_io(proc, addr, (uint8_t *)(uintptr_t)buf, len, true);
}

const struct hp_mem_ops hp_proc_mem_ops = {
	.read = mem_read,
	.write = mem_write,
};

int hp_proc_read(const struct hp_proc *proc, hp_raddr_t addr, void *buf,
		 size_t len)
{
	return (proc->mem ? proc->mem : &hp_proc_mem_ops)
		->read(proc, addr, buf, len);
}

int hp_proc_write(const struct hp_proc *proc, hp_raddr_t addr, const void *buf,
		  size_t len)
{
	return (proc->mem ? proc->mem : &hp_proc_mem_ops)
		->write(proc, addr, buf, len);
}

/* /proc/PID/maps lists mappings in address order: binary search. */
const struct hp_map *hp_proc_find_map(const struct hp_proc *proc,
				      hp_raddr_t addr)
{
	size_t lo = 0, hi = proc->nr_maps;

	while (lo < hi) {
		const size_t mid = lo + (hi - lo) / 2;
		const struct hp_map *m = &proc->maps[mid];

		if (addr < m->start)
			hi = mid;
		else if (addr >= m->end)
			lo = mid + 1;
		else
			return m;
	}
	return NULL;
}

/*
 * Whether the task @tid has exited: a task lets go of its working
 * directory as it exits (after its memory), and a kernel thread keeps
 * init's. One readlink, where its stat costs an open, a read, a close.
 */
static bool task_exited(pid_t tid)
{
	char path[48], dir[2];

	snprintf(path, sizeof(path), "/proc/%d/cwd", (int)tid);
	return readlink(path, dir, sizeof(dir)) < 0 && errno != EACCES &&
	       errno != EPERM;
}

int hp_proc_open_scan(pid_t pid, struct hp_proc *proc)
{
	bool vanished = false;
	int rc;

	*proc = (struct hp_proc){ .pid = pid, .tid = pid, .mem_fd = -1 };
	rc = read_maps(proc, true, &vanished);
	if (!rc)
		return 0;
	hp_proc_close(proc);
	/* No /proc/PID/maps: the process was reaped, every thread gone.
	 * An empty one: a kernel thread (it has no memory, and lives on),
	 * or a leader that exited (pthread_exit in main), whose threads
	 * may live on: a live thread's map, if any. */
	if (rc != -HP_E_GONE || vanished || !task_exited(pid))
		return rc;
	/* Its memory is opened when its files do not tell (need_mem), as
	 * for a live leader: one closed to this hpatch (root without
	 * CAP_DAC_OVERRIDE) must make it unknown, never no target. */
	if (!find_live_tid(pid, &proc->tid))
		return -HP_E_GONE;
	rc = read_maps(proc, true, NULL);
	if (rc)
		hp_proc_close(proc);
	return rc;
}

/*
 * Prefer the gap just below the module: above an executable lies the brk
 * heap, which must stay free to grow. Every byte of the region must reach
 * every byte of the module with a rel32.
 */
int hp_proc_find_hole(const struct hp_proc *proc, const struct hp_rmodule *mod,
		      uint64_t size, hp_raddr_t *out)
{
	const uint64_t reach = (uint64_t)HP_X86_REL32_REACH - HP_X86_PAGE_SIZE;
	const hp_raddr_t lo =
		mod->end > reach + 0x10000 ? mod->end - reach : 0x10000;
	const hp_raddr_t hi = mod->start + reach < HP_X86_USER_TOP
				      ? mod->start + reach
				      : HP_X86_USER_TOP;
	hp_raddr_t best = 0, heap_end = 0;
	uint64_t best_dist = UINT64_MAX;

	for (size_t i = 0; i < proc->nr_maps; i++)
		if (!strcmp(proc->maps[i].path, "[heap]"))
			heap_end = proc->maps[i].end;
	for (size_t i = 0; i <= proc->nr_maps; i++) {
		/* Gap i lies between map i-1 and map i; leave guard pages. */
		hp_raddr_t g0 =
			i ? proc->maps[i - 1].end + HP_X86_PAGE_SIZE : 0x10000;
		hp_raddr_t g1 = i < proc->nr_maps
					? proc->maps[i].start - HP_X86_PAGE_SIZE
					: HP_X86_USER_TOP;
		hp_raddr_t cand;
		uint64_t dist;

		if (g0 < lo)
			g0 = lo;
		if (g1 > hi)
			g1 = hi;
		if (g0 >= g1 || g1 - g0 < size)
			continue;
		if (g1 <= mod->start) {
			cand = (g1 - size) & ~(HP_X86_PAGE_SIZE - 1);
			dist = mod->start - cand;
		} else {
			/* Above: keep clear of brk's growth (1 GiB). */
			hp_raddr_t floor =
				heap_end ? heap_end + (1ULL << 30) : 0;

			if (g0 < floor)
				g0 = floor;
			cand = HP_ALIGN_UP(g0, HP_X86_PAGE_SIZE);
			if (cand < g0 || cand + size > g1 || cand + size > hi)
				continue;
			dist = cand - mod->end + (1ULL << 40); /* below wins */
		}
		if (cand < g0 || cand + size > g1)
			continue;
		if (dist < best_dist) {
			best = cand;
			best_dist = dist;
		}
	}
	if (!best)
		return -HP_E_NOHOLE;
	*out = best;
	return 0;
}

/*
 * Where the last search found a 'syscall' in a vDSO of @size bytes, at
 * @off. The vDSO is the kernel's own image, the same in every process
 * of a boot (at another address in each): the next process's is asked
 * for those two bytes alone, where the search read it whole (8 KiB).
 * Whatever the image, the two bytes read there are what makes the
 * address fit (any 0f 05 is a 'syscall' to a thread set to run it):
 * the same test as the search's; other bytes there, and it searches.
 */
static struct {
	size_t size, off; /* size 0: none found yet */
} vdso_insn;

/* A 'syscall' in @m, the vDSO: where the last was, if it is there. */
static bool vdso_insn_again(const struct hp_proc *proc, const struct hp_map *m,
			    hp_raddr_t *out)
{
	uint8_t b[2];

	if (!vdso_insn.size || vdso_insn.size != m->end - m->start ||
	    hp_proc_read(proc, m->start + vdso_insn.off, b, sizeof(b)) ||
	    b[0] != HP_X86_SYSCALL_0 || b[1] != HP_X86_SYSCALL_1)
		return false;
	*out = m->start + vdso_insn.off;
	return true;
}

/*
 * Whether the code @m maps may be rewritten while it runs: its own
 * mapping writable, or its file writable through another of @proc's
 * (a JIT's double mapping; libffi's closures in a temporary file), or a
 * memfd's or shared memory's, which another view, or another process,
 * writes (.NET's "/memfd:doublemapper").
 */
static bool code_rewritable(const struct hp_proc *proc, const struct hp_map *m)
{
	static const char *const shmem[] = { "/memfd:", "/SYSV",
					     "/dev/zero (deleted)" };

	if (m->prot & PROT_WRITE)
		return true;
	for (size_t i = 0; i < HP_ARRAY_SIZE(shmem); i++)
		if (!strncmp(m->path, shmem[i], strlen(shmem[i])))
			return true;
	for (size_t i = 0; i < proc->nr_maps && m->inode; i++) {
		const struct hp_map *o = &proc->maps[i];

		if (o->shared && (o->prot & PROT_WRITE) &&
		    o->inode == m->inode && o->dev == m->dev)
			return true;
	}
	return false;
}

/* Which pass of hp_proc_find_syscall_insn looks at @m: 0 the vDSO, 1 a
 * file's code, 2 other executable memory; -1 none. (Whether a file's
 * code may be rewritten is asked from pass 1 on, not of every map for
 * the vDSO.) */
static int syscall_pass(const struct hp_proc *proc, const struct hp_map *m,
			int pass)
{
	/* Never the legacy vsyscall page: the kernel emulates calls to its
	 * entries only (vsyscall=emulate, where it can be read), and any
	 * other instruction run there faults. */
	if (!(m->prot & PROT_EXEC) || !strcmp(m->path, "[vsyscall]"))
		return -1;
	if (!strcmp(m->path, "[vdso]"))
		return 0;
	if (m->path[0] != '/')
		return 2;
	return pass && code_rewritable(proc, m) ? 2 : 1;
}

int hp_proc_find_syscall_insn(const struct hp_proc *proc, hp_raddr_t *out)
{
	/* The vDSO first: small, always mapped, never rewritten. Then a
	 * file's code, which stays as mapped. Anonymous executable memory
	 * and code that may be rewritten last: a JIT's code, which its
	 * threads may rewrite or unmap while ours runs there, or a patch
	 * region of hpatch's, whose header's bytes change and which a later
	 * collection of this very run may unmap. */
	for (int pass = 0; pass < 3; pass++) {
		for (size_t i = 0; i < proc->nr_maps; i++) {
			const struct hp_map *m = &proc->maps[i];
			const bool vdso = pass == 0;
			uint8_t buf[65536];
			size_t len = m->end - m->start;

			if (syscall_pass(proc, m, pass) != pass)
				continue;
			if (vdso && vdso_insn_again(proc, m, out))
				return 0;
			if (len > sizeof(buf))
				len = sizeof(buf);
			if (hp_proc_read(proc, m->start, buf, len))
				continue;
			for (size_t j = 0; j + 1 < len; j++)
				if (buf[j] == HP_X86_SYSCALL_0 &&
				    buf[j + 1] == HP_X86_SYSCALL_1) {
					*out = m->start + j;
					if (vdso) {
						vdso_insn.size =
							m->end - m->start;
						vdso_insn.off = j;
					}
					return 0;
				}
		}
	}
	/* (Its memory reads nothing because it exited: no error of ours.) */
	if (hp_proc_gone(proc->pid))
		return -HP_E_GONE;
	return hp_error(-HP_E_INJECT,
			"pid %d: no 'syscall' instruction in executable "
			"memory",
			(int)proc->pid);
}
