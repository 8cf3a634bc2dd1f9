/*
 * Unit tests for the target's /proc readers (runtime/rt_proc.c and
 * rt_module.c, their statics reached by including them): a line of
 * /proc/PID/maps parsed by hand says what sscanf, the reference, says of
 * it, and a line that is not one is refused; a module's build-id comes
 * of as few reads of its memory as its first page allows; the vDSO's
 * 'syscall' is searched once, then asked for where it was; the system
 * call a task is blocked in, from its /proc/PID/task/TID/syscall
 * (runtime/rt_task.c).
 */
#include "hp_test.h"

#include "runtime/rt_module.c"
#include "runtime/rt_proc.c"

#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

/* @line parsed by hand says what sscanf, the reference, says of it. */
static void assert_same_map(const char *line)
{
	char perms[8] = "";
	unsigned long long start, end, off, inode = 0;
	unsigned int major = 0, minor = 0;
	struct hp_map m = { 0 };
	int n = 0;

	assert_true(parse_map_line(line, &m));
	assert_int_equal(sscanf(line, "%llx-%llx %7s %llx %x:%x %llu%n", &start,
				&end, perms, &off, &major, &minor, &inode, &n),
			 7);
	assert_int_equal(m.start, start);
	assert_int_equal(m.end, end);
	assert_int_equal(m.offset, off);
	assert_int_equal(m.dev, (uint64_t)major << 32 | minor);
	assert_int_equal(m.inode, inode);
	assert_int_equal(!!(m.prot & PROT_READ), perms[0] == 'r');
	assert_int_equal(!!(m.prot & PROT_WRITE), perms[1] == 'w');
	assert_int_equal(!!(m.prot & PROT_EXEC), perms[2] == 'x');
	assert_int_equal(m.shared, perms[3] == 's');
	assert_string_equal(m.path, line + n + strspn(line + n, " "));
}

static void test_maps_lines(void **state)
{
	static const char *const lines[] = {
		"55e8dc94d000-55e8dc94e000 r--p 00000000 fd:01 1234567 "
		"         /usr/bin/svc",
		"7f181f9c7000-7f181f9ed000 r-xp 00028000 08:02 42  /lib/x86_64-"
		"linux-gnu/libc.so.6",
		"7ffe0f658000-7ffe0f679000 rw-p 00000000 00:00 0 "
		"                         [stack]",
		"7f0000000000-7f0000001000 rw-s 00001000 00:05 9 /dev/zero "
		"(deleted)",
		"ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0",
		"7f0000000000-7f0000001000 rw-p 00000000 103:0a 5 /a b  c",
	};
	char *text = NULL, *line = NULL, *save = NULL;
	size_t len = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		assert_same_map(lines[i]);
	/* And every line of a real map. */
	assert_int_equal(hp_read_proc_file("/proc/self/maps", &text, &len), 0);
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save))
		assert_same_map(line);
	free(text);
}

/* A path longer than struct hp_map holds: its first 255 bytes. */
static void test_maps_long_path(void **state)
{
	char line[600], path[400];
	struct hp_map m = { 0 };

	(void)state;
	memset(path, 'p', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = 0;
	snprintf(line, sizeof(line), "1000-2000 r-xp 00000000 fd:01 7 %s",
		 path);
	assert_true(parse_map_line(line, &m));
	assert_int_equal(strlen(m.path), sizeof(m.path) - 1);
	assert_memory_equal(m.path, path, sizeof(m.path) - 1);
}

static void test_maps_refused(void **state)
{
	static const char *const bad[] = {
		"",
		"55e8dc94d000 r--p 00000000 fd:01 1 /x",
		"55e8dc94d000-55e8dc94e000 r--p",
		"55e8dc94d000-55e8dc94e000 r-p 00000000 fd:01 1 /x",
		"55e8dc94d000-55e8dc94e000 r--p 00000000 fd01 1 /x",
		"55e8dc94d000-55e8dc94e000 r--p 00000000 fd:01 x /x",
		"155e8dc94d000155e8dc94d000-1 r--p 0 0:0 0",
	};
	struct hp_map m;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(parse_map_line(bad[i], &m));
}

/* Fields of a /proc/PID/stat line, counted after the command name's last
 * ')', whatever it holds; a line cut short, or a field not a number,
 * reads nothing. */
static void test_stat_field(void **state)
{
	static const char line[] =
		"4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 95 0 0 0 1 2 0 0 "
		"20 0 1 0 123456789 2367488 245 18446744073709551615\n";
	unsigned long long v = 0;

	(void)state;
	assert_true(hp_stat_field(line, 4, &v));
	assert_true(v == 1); /* ppid */
	assert_true(hp_stat_field(line, 9, &v));
	assert_true(v == 4194560); /* flags */
	assert_true(hp_stat_field(line, 22, &v));
	assert_true(v == 123456789); /* start time */
	assert_true(hp_stat_field(line, 25, &v));
	assert_true(v == ~0ULL);		   /* (the line's end) */
	assert_false(hp_stat_field(line, 3, &v));  /* the state: no number */
	assert_false(hp_stat_field(line, 8, &v));  /* -1 */
	assert_false(hp_stat_field(line, 26, &v)); /* none */
	assert_false(hp_stat_field(line, 2, &v));
	assert_false(hp_stat_field("4242 (a) S 1", 22, &v));
	assert_false(hp_stat_field("4242 (a S 1 2", 4, &v));
}

/* Numbers up to 2^64 - 1 are read, in either base; one more is not. */
static void test_map_number_limits(void **state)
{
	unsigned long long v = 0;

	(void)state;
	assert_non_null(hp_parse_num("ffffffffffffffff-", 16, '-', &v));
	assert_true(v == ~0ULL);
	assert_null(hp_parse_num("10000000000000000-", 16, '-', &v));
	assert_non_null(hp_parse_num("18446744073709551615", 10, 0, &v));
	assert_true(v == ~0ULL);
	assert_null(hp_parse_num("18446744073709551616", 10, 0, &v));
	assert_null(hp_parse_num("99999999999999999999", 10, 0, &v));
	assert_non_null(hp_parse_num("7fFe0 ", 16, 0, &v));
	assert_true(v == 0x7ffe0);
	assert_null(hp_parse_num("-1", 10, 0, &v));
}

/* A process's memory: @size bytes at @at, each read (and its length)
 * counted. */
static struct {
	hp_raddr_t at;
	uint8_t *buf;
	size_t size;
} fake;
static int nr_reads;
static size_t last_len;

static int fake_read(const struct hp_proc *proc, hp_raddr_t addr, void *buf,
		     size_t len)
{
	(void)proc;
	nr_reads++;
	last_len = len;
	if (addr < fake.at || addr - fake.at > fake.size ||
	    len > fake.size - (addr - fake.at))
		return -EIO;
	memcpy(buf, fake.buf + (addr - fake.at), len);
	return 0;
}

static const struct hp_mem_ops fake_ops = { .read = fake_read };

/* For read_module_id: an ELF image of two pages at IMG_AT. */
#define IMG_AT 0x555500000000ull
static uint8_t img[2 * HP_X86_PAGE_SIZE];

/*
 * Lay out the image: the ELF header, its program headers at @phoff (a
 * load of the whole file, an executable load, a note) and the build-id
 * note at @note_off. The file is mapped at IMG_AT with bias IMG_AT.
 */
static void make_image(size_t phoff, size_t note_off)
{
	static const uint8_t id[] = { 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4 };
	Elf64_Ehdr eh = { .e_phoff = phoff,
			  .e_phentsize = sizeof(Elf64_Phdr),
			  .e_phnum = 3 };
	const Elf64_Phdr ph[3] = {
		{ .p_type = PT_LOAD, .p_flags = PF_R, .p_filesz = 0x1000 },
		{ .p_type = PT_LOAD,
		  .p_flags = PF_R | PF_X,
		  .p_offset = 0x1000,
		  .p_vaddr = 0x1000,
		  .p_filesz = 0x1000 },
		{ .p_type = PT_NOTE,
		  .p_offset = note_off,
		  .p_vaddr = note_off,
		  .p_filesz = 16 + sizeof(id) },
	};
	const uint32_t nhdr[3] = { 4, sizeof(id), NT_GNU_BUILD_ID };

	memset(img, 0, sizeof(img));
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	memcpy(img, &eh, sizeof(eh));
	memcpy(img + phoff, ph, sizeof(ph));
	memcpy(img + note_off, nhdr, sizeof(nhdr));
	memcpy(img + note_off + 12, "GNU", 4);
	memcpy(img + note_off + 16, id, sizeof(id));
}

/* The build-id and the text of an image whose headers and note lie in
 * its first page come of one read; those beyond it are read apart. */
static void test_module_id(void **state)
{
	static const uint8_t id[] = { 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4 };
	const struct hp_map m = { .start = IMG_AT,
				  .end = IMG_AT + 0x1000,
				  .prot = PROT_READ };
	const struct hp_proc proc = { .pid = 1,
				      .mem_fd = -1,
				      .mem = &fake_ops };
	static const struct {
		size_t phoff, note_off;
		int nr_reads;
	} cases[] = {
		{ 64, 0x200, 1 },     /* all in the first page */
		{ 64, 0x1800, 2 },    /* the note beyond it */
		{ 0x1400, 0x200, 2 }, /* the program headers beyond it */
		{ 0xff0, 0x200, 2 },  /* astride its end */
	};

	(void)state;
	fake.at = IMG_AT;
	fake.buf = img;
	fake.size = sizeof(img);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct module_id mi = { 0 };

		make_image(cases[i].phoff, cases[i].note_off);
		nr_reads = 0;
		assert_int_equal(read_module_id(&proc, &m, &mi), 0);
		assert_int_equal(nr_reads, cases[i].nr_reads);
		assert_int_equal(mi.id_len, sizeof(id));
		assert_memory_equal(mi.id, id, sizeof(id));
		assert_int_equal(mi.bias, IMG_AT);
		assert_int_equal(mi.text, IMG_AT + 0x1000);
		assert_int_equal(mi.text_off, 0x1000);
	}
	/* Not an ELF image (a locale file): one read, refused. */
	memset(img, 'x', sizeof(img));
	nr_reads = 0;
	assert_int_equal(read_module_id(&proc, &m, &(struct module_id){ 0 }),
			 -ENOENT);
	assert_int_equal(nr_reads, 1);
}

/*
 * A scan of the host learns each file's build-id from the file itself,
 * once: the next process that maps it costs no read of its memory, one
 * whose copy of the header says otherwise neither hides the file from the
 * others nor itself (the apply checks its memory again), and a miss the
 * file says is a miss for all. A file no longer at its path is read in
 * each process's memory, as before, and a match there remembered.
 */
static void test_scan_learns_files(void **state)
{
	static const uint8_t id[] = { 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4 };
	static const uint8_t other[] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	char path[] = "/tmp/hp-scan-XXXXXX";
	struct hp_map m[2] = {
		{ .start = IMG_AT, .end = IMG_AT + 0x1000, .prot = PROT_READ },
		{ .start = IMG_AT + 0x1000,
		  .end = IMG_AT + 0x2000,
		  .offset = 0x1000,
		  .prot = PROT_READ | PROT_EXEC },
	};
	struct hp_proc proc = { .pid = 1,
				.mem_fd = -1,
				.maps = m,
				.nr_maps = 2,
				.mem = &fake_ops };
	static uint8_t changed[sizeof(img)];
	struct hp_id_hits hits = { 0 };
	struct hp_rmodule mod;
	struct stat st;
	const int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	make_image(64, 0x200);
	assert_int_equal(write(fd, img, sizeof(img)), sizeof(img));
	assert_int_equal(fstat(fd, &st), 0);
	close(fd);
	for (int i = 0; i < 2; i++) {
		m[i].dev = (uint64_t)major(st.st_dev) << 32 | minor(st.st_dev);
		m[i].inode = st.st_ino;
		snprintf(m[i].path, sizeof(m[i].path), "%s", path);
	}
	/* A process whose copy of the header says nothing: the file's
	 * build-id, and no read of its memory. */
	memcpy(changed, img, sizeof(img));
	memset(changed, 'x', 64);
	fake.at = IMG_AT;
	fake.buf = changed;
	fake.size = sizeof(changed);
	nr_reads = 0;
	assert_int_equal(
		hp_proc_find_module_in(&proc, &hits, id, sizeof(id), &mod), 0);
	assert_int_equal(mod.bias, IMG_AT);
	/* Another process, mapping the file elsewhere: moved, no read. */
	for (int i = 0; i < 2; i++) {
		m[i].start += 0x100000;
		m[i].end += 0x100000;
	}
	fake.at = IMG_AT + 0x100000;
	fake.buf = img;
	assert_int_equal(
		hp_proc_find_module_in(&proc, &hits, id, sizeof(id), &mod), 0);
	assert_int_equal(mod.bias, IMG_AT + 0x100000);
	/* A build-id the file does not carry: a miss, still no read. */
	assert_int_equal(hp_proc_find_module_in(&proc, &hits, other,
						sizeof(other), &mod),
			 -HP_E_NOTARGET);
	assert_int_equal(nr_reads, 0);
	hp_id_hits_release(&hits);
	/* Gone from its path: each process's memory is read, and only a
	 * match is remembered. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(hp_proc_find_module_in(&proc, &hits, other,
						sizeof(other), &mod),
			 -HP_E_NOTARGET);
	assert_int_equal(nr_reads, 1);
	assert_int_equal(hp_proc_find_module_in(&proc, &hits, other,
						sizeof(other), &mod),
			 -HP_E_NOTARGET);
	assert_int_equal(nr_reads, 2);
	assert_int_equal(
		hp_proc_find_module_in(&proc, &hits, id, sizeof(id), &mod), 0);
	assert_int_equal(nr_reads, 3);
	assert_int_equal(
		hp_proc_find_module_in(&proc, &hits, id, sizeof(id), &mod), 0);
	assert_int_equal(nr_reads, 3);
	hp_id_hits_release(&hits);
	/* Whose copy of the header says nothing, first: no target, and it
	 * hides the file from no other process. */
	fake.buf = changed;
	assert_int_equal(
		hp_proc_find_module_in(&proc, &hits, id, sizeof(id), &mod),
		-HP_E_NOTARGET);
	fake.buf = img;
	assert_int_equal(
		hp_proc_find_module_in(&proc, &hits, id, sizeof(id), &mod), 0);
	assert_int_equal(nr_reads, 5);
	hp_id_hits_release(&hits);
}

/* A vDSO of two pages at VDSO_AT. */
#define VDSO_AT 0x7ffd00000000ull
static uint8_t vdso[2 * HP_X86_PAGE_SIZE];

/* The fake memory: vdso[], at VDSO_AT, no 'syscall' in it yet. */
static void fake_vdso(void)
{
	fake.at = VDSO_AT;
	fake.buf = vdso;
	fake.size = sizeof(vdso);
	memset(vdso, 0x90, sizeof(vdso));
}

/* The 'syscall' found in the vDSO is asked for again by two bytes at the
 * same offset; anything else there, and the vDSO is searched again. */
static void test_syscall_insn(void **state)
{
	struct hp_map m = { .start = VDSO_AT,
			    .end = VDSO_AT + sizeof(vdso),
			    .prot = PROT_READ | PROT_EXEC };
	const struct hp_proc proc = { .pid = 1,
				      .mem_fd = -1,
				      .maps = &m,
				      .nr_maps = 1,
				      .mem = &fake_ops };
	hp_raddr_t at = 0;

	(void)state;
	fake_vdso();
	snprintf(m.path, sizeof(m.path), "[vdso]");
	vdso[0x123] = HP_X86_SYSCALL_0;
	vdso[0x124] = HP_X86_SYSCALL_1;
	nr_reads = 0;
	assert_hp_ok(hp_proc_find_syscall_insn(&proc, &at));
	assert_int_equal(at, VDSO_AT + 0x123);
	assert_int_equal(last_len, sizeof(vdso)); /* searched */
	/* The next process: two bytes read, the same offset. */
	nr_reads = 0;
	assert_hp_ok(hp_proc_find_syscall_insn(&proc, &at));
	assert_int_equal(at, VDSO_AT + 0x123);
	assert_int_equal(nr_reads, 1);
	assert_int_equal(last_len, 2);
	/* Another image (its 'syscall' elsewhere): searched, found there,
	 * and asked for there the next time. */
	vdso[0x123] = 0x90;
	vdso[0x456] = HP_X86_SYSCALL_0;
	vdso[0x457] = HP_X86_SYSCALL_1;
	nr_reads = 0;
	assert_hp_ok(hp_proc_find_syscall_insn(&proc, &at));
	assert_int_equal(at, VDSO_AT + 0x456);
	assert_int_equal(nr_reads, 2);
	assert_int_equal(last_len, sizeof(vdso));
	nr_reads = 0;
	assert_hp_ok(hp_proc_find_syscall_insn(&proc, &at));
	assert_int_equal(at, VDSO_AT + 0x456);
	assert_int_equal(last_len, 2);
	/* A vDSO of another size: searched. */
	m.end = VDSO_AT + HP_X86_PAGE_SIZE;
	nr_reads = 0;
	assert_hp_ok(hp_proc_find_syscall_insn(&proc, &at));
	assert_int_equal(at, VDSO_AT + 0x456);
	assert_int_equal(last_len, HP_X86_PAGE_SIZE);
}

/* Without a vDSO, a 'syscall' in a file's code is taken before one in
 * anonymous executable memory (a JIT's, a patch region's header), even
 * at a lower address; and before one in a file's code that can be
 * rewritten, searched with anonymous memory: a memfd's (a JIT's double
 * mapping: .NET's "doublemapper"), shared memory's, one mapped writable
 * too (libffi's closures in a temporary file, mapped twice), or itself
 * writable. */
static void test_syscall_insn_file_first(void **state)
{
	static const struct {
		const char *path;
		unsigned int prot;
		bool twice; /* also mapped read+write, shared */
	} views[] = {
		{ "", PROT_READ | PROT_EXEC, false },
		{ "/memfd:doublemapper (deleted)", PROT_READ | PROT_EXEC,
		  false },
		{ "/SYSV00000000 (deleted)", PROT_READ | PROT_EXEC, false },
		{ "/dev/zero (deleted)", PROT_READ | PROT_EXEC, false },
		{ "/tmp/ffiAbc123 (deleted)", PROT_READ | PROT_EXEC, true },
		{ "/usr/lib/jit.so", PROT_READ | PROT_WRITE | PROT_EXEC,
		  false },
	};
	struct hp_map m[3] = {
		{ .start = VDSO_AT, .end = VDSO_AT + HP_X86_PAGE_SIZE },
		{ .start = VDSO_AT + HP_X86_PAGE_SIZE,
		  .end = VDSO_AT + 2 * HP_X86_PAGE_SIZE,
		  .prot = PROT_READ | PROT_EXEC,
		  .dev = 8,
		  .inode = 43 },
		{ .start = VDSO_AT + 4 * HP_X86_PAGE_SIZE,
		  .end = VDSO_AT + 5 * HP_X86_PAGE_SIZE,
		  .prot = PROT_READ | PROT_WRITE,
		  .shared = true,
		  .dev = 8 },
	};
	const struct hp_proc proc = { .pid = 1,
				      .mem_fd = -1,
				      .maps = m,
				      .nr_maps = 3,
				      .mem = &fake_ops };
	hp_raddr_t at = 0;

	(void)state;
	fake_vdso();
	snprintf(m[1].path, sizeof(m[1].path), "/usr/lib/libx.so");
	vdso[0x10] = HP_X86_SYSCALL_0; /* the anonymous or rewritable one's */
	vdso[0x11] = HP_X86_SYSCALL_1;
	vdso[HP_X86_PAGE_SIZE + 0x20] = HP_X86_SYSCALL_0; /* the file's */
	vdso[HP_X86_PAGE_SIZE + 0x21] = HP_X86_SYSCALL_1;
	for (size_t i = 0; i < HP_ARRAY_SIZE(views); i++) {
		snprintf(m[0].path, sizeof(m[0].path), "%s", views[i].path);
		m[0].prot = views[i].prot;
		m[0].dev = views[i].path[0] ? 8 : 0;
		m[0].inode = views[i].path[0] ? 42 : 0;
		m[2].inode = views[i].twice ? 42 : 44;
		assert_hp_ok(hp_proc_find_syscall_insn(&proc, &at));
		assert_int_equal(at, VDSO_AT + HP_X86_PAGE_SIZE + 0x20);
	}
	/* Mapped twice, the other view not writable: a file's code, the
	 * first in address order. */
	m[2].prot = PROT_READ;
	m[2].inode = 42;
	m[0].prot = PROT_READ | PROT_EXEC;
	assert_hp_ok(hp_proc_find_syscall_insn(&proc, &at));
	assert_int_equal(at, VDSO_AT + 0x10);
	/* Anonymous memory alone: taken, as the last resort. */
	m[0].path[0] = 0;
	m[0].dev = m[0].inode = 0;
	vdso[HP_X86_PAGE_SIZE + 0x20] = 0x90;
	assert_hp_ok(hp_proc_find_syscall_insn(&proc, &at));
	assert_int_equal(at, VDSO_AT + 0x10);
	/* Never the legacy vsyscall page (readable with vsyscall=emulate):
	 * the kernel emulates calls to its three entries only, and any
	 * other instruction run there faults (SIGSEGV). */
	snprintf(m[0].path, sizeof(m[0].path), "[vsyscall]");
	assert_int_not_equal(hp_proc_find_syscall_insn(&proc, &at), 0);
}

/* A line of /proc/PID/task/TID/syscall: the number of the call the task
 * is blocked in, else -1 (not in one, running, or not a line of it). */
static void test_syscall_line(void **state)
{
	(void)state;
	assert_int_equal(hp_syscall_line_nr("0 0x3 0x7ffc 0x10 0x0 0x0 0x0 "
					    "0x7ffc0a8 0x7f1e2b3c\n"),
			 0);
	assert_int_equal(hp_syscall_line_nr("230 0x1 0x0 0x7ffd 0x0 0x0 0x0 "
					    "0x7ffd3f0 0x7f00aa10\n"),
			 230);
	assert_int_equal(hp_syscall_line_nr("-1 0x7ffd3f0 0x401136\n"), -1);
	assert_int_equal(hp_syscall_line_nr("running\n"), -1);
	/* Cut short, after the number or within it: its digits. */
	assert_int_equal(hp_syscall_line_nr("61"), 61);
	assert_int_equal(hp_syscall_line_nr("6"), 6);
	assert_int_equal(hp_syscall_line_nr("-"), -1);
	assert_int_equal(hp_syscall_line_nr(""), -1);
	assert_int_equal(hp_syscall_line_nr(" 7 0x0"), -1);
	assert_int_equal(hp_syscall_line_nr("garbage 7"), -1);
}

/* Read from a live task: one spinning in user space ("running" while on
 * a CPU, else "-1 SP PC"), one blocked in read(2), one not there. */
static void test_task_syscall(void **state)
{
	const struct timespec tick = { .tv_nsec = 1000000 };
	int fds[2], status = 0;
	long nr;
	pid_t pid;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (!pid)
		for (volatile unsigned long n = 0;; n++)
			;
	/* Once in its loop (10 s at most): the registers kept from its
	 * fork say a system call until the first interrupt. */
	nr = hp_task_syscall_nr(pid, pid);
	for (int i = 0; i < 10000 && nr != -1; i++) {
		nanosleep(&tick, NULL);
		nr = hp_task_syscall_nr(pid, pid);
	}
	assert_int_equal(nr, -1);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		char c;

		close(fds[1]);
		_exit(read(fds[0], &c, 1) == 1 ? 0 : 1);
	}
	close(fds[0]);
	/* Until the child is in its read (10 s at most). */
	nr = -1;
	for (int i = 0; i < 10000 && nr != SYS_read; i++) {
		nr = hp_task_syscall_nr(pid, pid);
		nanosleep(&tick, NULL);
	}
	assert_int_equal(nr, SYS_read);
	assert_int_equal(write(fds[1], "x", 1), 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && !WEXITSTATUS(status));
	close(fds[1]);
	/* Reaped: no such task. */
	assert_int_equal(hp_task_syscall_nr(pid, pid), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_maps_lines),
		cmocka_unit_test(test_maps_long_path),
		cmocka_unit_test(test_maps_refused),
		cmocka_unit_test(test_map_number_limits),
		cmocka_unit_test(test_stat_field),
		cmocka_unit_test(test_module_id),
		cmocka_unit_test(test_scan_learns_files),
		cmocka_unit_test(test_syscall_insn),
		cmocka_unit_test(test_syscall_insn_file_first),
		cmocka_unit_test(test_syscall_line),
		cmocka_unit_test(test_task_syscall),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
