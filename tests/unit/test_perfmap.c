/*
 * Unit tests for perf's maps (runtime/rt_perfmap.c, its statics reached by
 * including it), in a directory of the test's own: a map that an earlier
 * process of the same pid left, older than this one, with hpatch's lines
 * alone, is emptied before the new lines go in; any other is appended to.
 */
#include "hp_test.h"

#include "runtime/rt_perfmap.c"

#include <stdlib.h>

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/hp-perfmap-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	perfmap_dir = dir;
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

/* This process's start time, in clock ticks since boot. */
static uint64_t own_start(void)
{
	char buf[1024], *p = NULL;
	unsigned long long t = 0;
	FILE *f = fopen("/proc/self/stat", "r");

	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	p = strrchr(buf, ')');
	assert_non_null(p);
	assert_int_equal(sscanf(p + 2,
				"%*c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s "
				"%*s %*s %*s %*s %*s %*s %*s %*s %llu",
				&t),
			 1);
	return t;
}

/* Plant this process's map holding @text, written @age_s seconds before
 * this process started (negative: after). */
static void plant(const char *text, long age_s)
{
	const uint64_t start = own_start();
	const long hz = sysconf(_SC_CLK_TCK);
	struct timespec real, boot, times[2];
	char path[128];
	FILE *f = NULL;

	snprintf(path, sizeof(path), "%s/perf-%d.map", dir, (int)getpid());
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	clock_gettime(CLOCK_REALTIME, &real);
	clock_gettime(CLOCK_BOOTTIME, &boot);
	times[0] = times[1] = (struct timespec){
		.tv_sec = real.tv_sec - boot.tv_sec +
			  (time_t)(start / (uint64_t)hz) - age_s,
	};
	assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
}

/* Add a line for one function to this process's map; the map after. */
static const char *add_own(uint64_t start)
{
	static char buf[4096];
	struct hp_func func = { .name = (char *)"price" };
	const struct hp_module m = { .funcs = &func, .nr_funcs = 1 };
	struct hp_rt_func rec = { .new_addr = 0x7f0000001000, .new_size = 18 };
	const struct hp_prep pr = { .m = &m, .recs = &rec, .nr_recs = 1 };
	const struct hp_proc proc = { .pid = getpid(),
				      .mem_fd = -1,
				      .start = start };
	char path[128];
	ssize_t n;
	int fd;

	hp_perfmap_add(&proc, "fix-1", &pr);
	snprintf(path, sizeof(path), "%s/perf-%d.map", dir, (int)getpid());
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	return buf;
}

#define NEW "7f0000001000 12 price [hpatch:fix-1]\n"
static const char ours[] = "7f0000002000 20 old_fn [hpatch:fix-0]\n";
static const char jit[] = "7f0000004000 40 Interpreter\n";

static void test_earlier_process_map_emptied(void **state)
{
	(void)state;
	plant(ours, 3600);
	assert_string_equal(add_own(own_start()), NEW);
	/* Shorter than the new lines, or longer: none of it stays. */
	plant("1 2 f [hpatch:x]\n", 3600);
	assert_string_equal(add_own(own_start()), NEW);
	plant("7f0000002000 20 old_fn [hpatch:fix-0]\n"
	      "7f0000003000 20 old_gn [hpatch:fix-0]\n",
	      3600);
	assert_string_equal(add_own(own_start()), NEW);
}

static void test_own_map_appended(void **state)
{
	(void)state;
	/* Written since it started (an earlier patch of this process). */
	plant(ours, -1);
	assert_string_equal(add_own(own_start()), "7f0000002000 20 old_fn "
						  "[hpatch:fix-0]\n" NEW);
}

static void test_jit_map_kept(void **state)
{
	(void)state;
	plant(jit, 3600);
	assert_string_equal(add_own(own_start()),
			    "7f0000004000 40 Interpreter\n" NEW);
}

static void test_start_unknown(void **state)
{
	(void)state;
	plant(ours, 3600);
	assert_string_equal(add_own(0),
			    "7f0000002000 20 old_fn [hpatch:fix-0]\n" NEW);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_earlier_process_map_emptied, setup, teardown),
		cmocka_unit_test_setup_teardown(test_own_map_appended, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_jit_map_kept, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_start_unknown, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
