/*
 * Signal frames (rt_sigframe.c): where a process's C library returns from
 * a signal handler (the restorer, found once per mapped file), what a
 * frame on a stack says of the code the signal interrupted, and the walk
 * of a thread's stack through the frames on it, for rt_check.c.
 */
#include "runtime/runtime_int.h"
#include "common/hp_arch_x86_64.h"
#include "common/hp_log.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define HP_LOG_PREFIX "rt: "
/* A C library's code larger than this is not searched. */
#define HP_RESTORER_SEARCH_MAX (64u << 20)
/* Read and searched a chunk at a time, until one is found: glibc 2.36's
 * is 88 KiB into its code, all 1.3 MiB of which cost ~1.3 ms of CPU to
 * read (one 256 KiB chunk still ~0.55 ms; 32 KiB chunks, ~0.08). */
#define HP_RESTORER_CHUNK (32u << 10)
/* The FPU state the kernel saves lies above the frame, within this. */
#define HP_SIGFRAME_FPSTATE_MAX (64u << 10)
#define HP_RESTORER_FILES 16 /* files remembered */

/* One mapped file's search: restorers at these offsets into the mapping
 * (UINT64_MAX: none). */
struct restorer_file {
	uint64_t dev, inode, offset, size;
	uint64_t at[HP_RESTORERS_MAX];
	/* Its first "syscall; ret" (UINT64_MAX: none), once looked for. */
	uint64_t sysret;
	bool sysret_searched;
};

static struct {
	struct restorer_file f[HP_RESTORER_FILES];
	size_t nr, next;
} known;

/* Is @path a C library: glibc's libc.so.6 (libc-2.x.so before 2.34),
 * musl's ld-musl-x86_64.so.1 (libc.musl-x86_64.so.1 on Alpine)? */
static bool is_libc(const char *path)
{
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	return !strncmp(base, "libc.so", 7) || !strncmp(base, "libc-", 5) ||
	       !strncmp(base, "ld-musl-", 8) ||
	       !strncmp(base, "libc.musl-", 10);
}

/*
 * The offsets in mapping @m of @proc where @want (@len bytes) starts, at
 * most @max of them, into @at (the rest UINT64_MAX), read in chunks
 * overlapping by @len - 1 bytes until one holds any (no more read). A
 * mapping over HP_RESTORER_SEARCH_MAX holds none. Return: false if its
 * memory could not be read.
 */
static bool find_bytes(const struct hp_proc *proc, const struct hp_map *m,
		       const uint8_t *want, size_t len, uint64_t *at,
		       size_t max)
{
	const uint64_t size = m->end - m->start;
	const size_t chunk = HP_RESTORER_CHUNK + len - 1;
	size_t nr = 0;
	uint8_t *buf = malloc(chunk);

	for (size_t k = 0; k < max; k++)
		at[k] = UINT64_MAX;
	if (!buf || size > HP_RESTORER_SEARCH_MAX) {
		free(buf);
		return !!buf;
	}
	for (uint64_t off = 0; off < size && !nr; off += HP_RESTORER_CHUNK) {
		const size_t n =
			size - off > chunk ? chunk : (size_t)(size - off);
		const uint8_t *p = buf, *end = buf + n;

		if (hp_proc_read(proc, m->start + off, buf, n)) {
			free(buf);
			return false;
		}
		while (nr < max &&
		       (p = memmem(p, (size_t)(end - p), want, len))) {
			if ((size_t)(p - buf) < HP_RESTORER_CHUNK)
				at[nr++] = off + (uint64_t)(p - buf);
			p++;
		}
	}
	free(buf);
	return true;
}

/* Search mapping @m of @proc for the restorer's bytes, into @f.
 * Return: false if its memory could not be read. */
static bool search_map(const struct hp_proc *proc, const struct hp_map *m,
		       struct restorer_file *f)
{
	static const uint8_t want[] = HP_X86_RESTORER_BYTES;

	return find_bytes(proc, m, want, sizeof(want), f->at, HP_RESTORERS_MAX);
}

/*
 * Is what @f found still in mapping @m? An inode is reused once its file
 * is deleted (a C library upgraded, in a long-lived hpatchd): the first
 * restorer's bytes are read again, 9 bytes per process and file.
 */
static bool still_there(const struct hp_proc *proc, const struct hp_map *m,
			const struct restorer_file *f)
{
	static const uint8_t want[] = HP_X86_RESTORER_BYTES;
	uint8_t got[sizeof(want)];

	if (f->at[0] == UINT64_MAX)
		return true;
	if (hp_proc_read(proc, m->start + f->at[0], got, sizeof(got)))
		return true; /* unread: as found (the caller sees it fail) */
	return !memcmp(got, want, sizeof(want));
}

/* The restorers of mapping @m, from what this run found or searched now. */
static struct restorer_file *file_restorers(const struct hp_proc *proc,
					    const struct hp_map *m)
{
	struct restorer_file *f = NULL;

	for (size_t i = 0; i < known.nr && !f; i++)
		if (known.f[i].dev == m->dev && known.f[i].inode == m->inode &&
		    known.f[i].offset == m->offset &&
		    known.f[i].size == m->end - m->start)
			f = &known.f[i];
	if (f && still_there(proc, m, f))
		return f;
	if (!f) {
		f = &known.f[known.next];
		known.next = (known.next + 1) % HP_RESTORER_FILES;
		known.nr += known.nr < HP_RESTORER_FILES;
	}
	*f = (struct restorer_file){ .dev = m->dev,
				     .inode = m->inode,
				     .offset = m->offset,
				     .size = m->end - m->start };
	if (!search_map(proc, m, f))
		f->inode = 0; /* unread: searched again next time */
	hp_dbg(HP_DBG_PTRACE, "pid %d: '%s': restorer at +0x%llx",
	       (int)proc->pid, m->path, (unsigned long long)f->at[0]);
	return f;
}

/* Add the restorers of the executable mappings of @path. */
static void add_file(struct hp_proc *proc, const char *path)
{
	for (size_t i = 0; i < proc->nr_maps; i++) {
		const struct hp_map *m = &proc->maps[i];
		const struct restorer_file *f = NULL;

		if (!(m->prot & PROT_EXEC) || !m->inode ||
		    strcmp(m->path, path))
			continue;
		f = file_restorers(proc, m);
		for (size_t k = 0;
		     k < HP_RESTORERS_MAX && f->at[k] != UINT64_MAX &&
		     proc->nr_restorers < HP_RESTORERS_MAX;
		     k++)
			proc->restorers[proc->nr_restorers++] =
				m->start + f->at[k];
	}
}

void hp_proc_find_restorers(struct hp_proc *proc)
{
	const char *last = NULL;
	bool libc = false;

	proc->nr_restorers = 0;
	for (size_t i = 0; i < proc->nr_maps; i++) {
		const struct hp_map *m = &proc->maps[i];

		if (!(m->prot & PROT_EXEC) || !m->inode || !is_libc(m->path))
			continue;
		libc = true;
		if (!last || strcmp(last, m->path)) /* once per file */
			add_file(proc, m->path);
		last = m->path;
	}
	/* None: a static program has its own (the first mapping). */
	if (!libc && proc->nr_maps && proc->maps[0].inode)
		add_file(proc, proc->maps[0].path);
}

/* "syscall; ret": a system call made there returns to the stack's top
 * word (glibc's getpid, gettid: the first is 384 KiB into glibc 2.36's
 * code, ld.so's at 71 KiB). */
static const uint8_t sysret_bytes[] = { HP_X86_SYSCALL_0, HP_X86_SYSCALL_1,
					HP_X86_RET };

/* The offset of the first "syscall; ret" in mapping @m, into @f (left
 * to search again if its memory could not be read). */
static void search_sysret(const struct hp_proc *proc, const struct hp_map *m,
			  struct restorer_file *f)
{
	f->sysret_searched = find_bytes(proc, m, sysret_bytes,
					sizeof(sysret_bytes), &f->sysret, 1);
}

/* Are @len bytes at @addr of @proc still @want? (Unread: as the caller
 * will find when it runs there.) */
static bool bytes_at(const struct hp_proc *proc, hp_raddr_t addr,
		     const uint8_t *want, size_t len)
{
	uint8_t got[16];

	return !hp_proc_read(proc, addr, got, len) && !memcmp(got, want, len);
}

int hp_proc_find_sysret(const struct hp_proc *proc, hp_raddr_t *sysret,
			hp_raddr_t *restorer)
{
	/* The C library's code alone: a static program's own may be a
	 * runtime's whose threads run on stacks too small for a signal
	 * frame (Go's goroutines take signals on an alternate stack). */
	for (size_t i = 0; i < proc->nr_maps; i++) {
		const struct hp_map *m = &proc->maps[i];
		struct restorer_file *f = NULL;

		if (!(m->prot & PROT_EXEC) || !m->inode || !is_libc(m->path))
			continue;
		f = file_restorers(proc, m);
		if (f->at[0] == UINT64_MAX)
			continue;
		if (!f->sysret_searched)
			search_sysret(proc, m, f);
		if (f->sysret == UINT64_MAX ||
		    !bytes_at(proc, m->start + f->sysret, sysret_bytes,
			      sizeof(sysret_bytes)))
			continue;
		*sysret = m->start + f->sysret;
		*restorer = m->start + f->at[0];
		return 0;
	}
	return -ENOENT;
}

/*
 * The kernel's frame, not a copy of the restorer's address left in a
 * stack word (sigaction's own locals hold one): the FPU state just above
 * it, aligned for XSAVE (always saved since Linux 4.14, no FPU state
 * being lazy any more), and a 64-bit code segment interrupted. A word
 * taken for a frame would have an arbitrary mapping read as the stack
 * it names, in the stop window.
 */
bool hp_sigframe_read(const uint8_t *p, uint64_t addr, struct hp_sigframe *f)
{
	uint64_t fpstate, csgsfs;

	memcpy(&f->rsp, p + HP_X86_SIGFRAME_RSP, sizeof(f->rsp));
	memcpy(&f->rip, p + HP_X86_SIGFRAME_RIP, sizeof(f->rip));
	memcpy(&csgsfs, p + HP_X86_SIGFRAME_CSGSFS, sizeof(csgsfs));
	memcpy(&fpstate, p + HP_X86_SIGFRAME_FPSTATE, sizeof(fpstate));
	return (csgsfs & 0xffff) == HP_X86_USER_CS && fpstate > addr &&
	       fpstate - addr <= HP_SIGFRAME_FPSTATE_MAX &&
	       !(fpstate % HP_X86_FPSTATE_ALIGN);
}

/*
 * Signal frames: a thread in a handler on an alternate stack
 * (sigaltstack) runs above the frame the kernel pushed there, whose saved
 * stack pointer names the stack it interrupted. That stack is scanned as
 * well, from that pointer to the end of its mapping, and the saved
 * instruction pointer checked as a thread's is. Frames are followed
 * HP_SIGFRAME_DEPTH deep, and at most HP_SIGFRAME_READS more stacks
 * (HP_SIGFRAME_BYTES) are read for a thread; past a bound the thread
 * counts as busy. Read from the target, a frame is untrusted: one whose
 * FPU state pointer is not the kernel's (hp_sigframe_read), or whose
 * stack pointer lies in no readable mapping, is no frame (a real one
 * names a stack, mapped before the signal came).
 */
#define HP_SIGFRAME_DEPTH 4
#define HP_SIGFRAME_READS 4
#define HP_SIGFRAME_BYTES (2 * HP_STACK_SCAN_MAX)

/* What a thread's frames are checked against: the stacks read so far. */
struct frame_walk {
	const struct hp_proc *proc;
	const struct range_index *x;
	hp_raddr_t lo[HP_SIGFRAME_READS + 1], hi[HP_SIGFRAME_READS + 1];
	size_t nr_read, bytes;
};

/* Busy, as the report names it, with the frames beyond the bound. */
static const struct hp_busy_range frames_too_deep = {
	.name = "signal frames beyond the bound",
};

static const struct hp_busy_range *scan_frames(struct frame_walk *fw,
					       const uint8_t *p, size_t len,
					       hp_raddr_t at, int depth);

/* The stack interrupted at @sp, read and scanned unless read already. */
static const struct hp_busy_range *scan_interrupted(struct frame_walk *fw,
						    hp_raddr_t sp, int depth)
{
	const struct hp_busy_range *b = NULL;
	size_t near = 0, len = 0;
	const struct hp_map *m = NULL;
	uint8_t *buf = NULL;

	for (size_t i = 0; i <= fw->nr_read; i++)
		if (sp >= fw->lo[i] && sp < fw->hi[i])
			return NULL; /* a handler on the same stack */
	m = hp_stack_map(fw->proc, sp, &near);
	if (!m || !(m->prot & PROT_READ)) {
		hp_dbg(HP_DBG_PTRACE,
		       "signal frame: stack pointer 0x%llx in no readable "
		       "mapping: not a frame",
		       (unsigned long long)sp);
		return NULL;
	}
	len = hp_stack_span(fw->proc, sp, &near);
	fw->bytes += len;
	if (depth >= HP_SIGFRAME_DEPTH || fw->nr_read >= HP_SIGFRAME_READS ||
	    fw->bytes > HP_SIGFRAME_BYTES)
		return &frames_too_deep;
	fw->nr_read++;
	fw->lo[fw->nr_read] = sp & ~7ULL;
	fw->hi[fw->nr_read] = (sp & ~7ULL) + len;
	buf = malloc(len);
	if (!buf || hp_proc_read(fw->proc, sp & ~7ULL, buf, len))
		b = &frames_too_deep; /* unread: never found clean */
	else
		b = scan_frames(fw, buf, len, sp & ~7ULL, depth + 1);
	free(buf);
	return b;
}

/* The frame whose restorer word is @off bytes into @p (at @at). */
static const struct hp_busy_range *follow_frame(struct frame_walk *fw,
						const uint8_t *p, size_t len,
						size_t off, hp_raddr_t at,
						int depth)
{
	uint8_t buf[HP_X86_SIGFRAME_SIZE];
	const uint8_t *fp = p + off;
	struct hp_sigframe f;
	const struct hp_busy_range *b = NULL;

	if (len - off < sizeof(buf)) { /* past the bytes read: read it */
		if (hp_proc_read(fw->proc, at + off, buf, sizeof(buf)))
			return NULL; /* past its mapping: no frame */
		fp = buf;
	}
	if (!hp_sigframe_read(fp, at + off, &f))
		return NULL;
	b = hp_in_ranges(fw->x->r, fw->x->nr_r, f.rip);
	return b ? b : scan_interrupted(fw, f.rsp, depth);
}

/* The first return into a range of fw->x on the @len bytes at @p (read
 * from @at), or on a stack a signal frame there names. */
static const struct hp_busy_range *scan_frames(struct frame_walk *fw,
					       const uint8_t *p, size_t len,
					       hp_raddr_t at, int depth)
{
	size_t off = 0;

	for (;;) {
		size_t frame = SIZE_MAX;
		const struct hp_busy_range *b =
			hp_scan_stack(p + off, len - off, fw->x, &frame);

		if (b || frame == SIZE_MAX)
			return b;
		off += frame;
		b = follow_frame(fw, p, len, off, at, depth);
		if (b)
			return b;
		off += sizeof(uint64_t);
	}
}

/* Is @ip on a restorer's instructions: a handler returned, its frame's
 * restorer word just popped, rt_sigreturn not made yet? */
static bool at_restorer(const struct range_index *x, hp_raddr_t ip)
{
	for (size_t k = 0; k < x->nr_restorers; k++)
		if (ip >= x->restorers[k] &&
		    ip - x->restorers[k] < HP_X86_RESTORER_SIZE)
			return true;
	return false;
}

/* The first return into a range of @x on a thread's stack (the @len
 * bytes at @p, read from its stack pointer @sp; its instruction pointer
 * @ip), or on a stack a signal frame on it names: one at @sp - 8 too,
 * when the thread is on the restorer. */
const struct hp_busy_range *hp_scan_thread(const struct hp_proc *proc,
					   const struct range_index *x,
					   const uint8_t *p, size_t len,
					   hp_raddr_t sp, hp_raddr_t ip)
{
	struct frame_walk fw;
	const struct hp_busy_range *b = NULL;

	if (!x->nr_restorers)
		return hp_scan_stack(p, len, x, NULL);
	fw = (struct frame_walk){ .proc = proc, .x = x };
	fw.lo[0] = sp & ~7ULL;
	fw.hi[0] = fw.lo[0] + len;
	if (at_restorer(x, ip) && sp >= 8)
		b = follow_frame(&fw, p, 0, 0, sp - 8, 0);
	return b ? b : scan_frames(&fw, p, len, fw.lo[0], 0);
}
