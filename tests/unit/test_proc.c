/*
 * Unit tests for the target's /proc readers (runtime/rt_proc.c, its
 * statics reached by including it): a line of /proc/PID/maps parsed by
 * hand says what sscanf, the reference, says of it, and a line that is
 * not one is refused.
 */
#include "hp_test.h"

#include "runtime/rt_proc.c"

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
	assert_int_equal(read_proc_file("/proc/self/maps", &text, &len), 0);
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save))
		assert_same_map(line);
	free(text);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_maps_lines),
		cmocka_unit_test(test_maps_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
