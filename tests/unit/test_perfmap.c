/*
 * Unit tests for perf's maps (runtime/rt_perfmap.c, its statics reached by
 * including it), in a directory of the test's own: a map that an earlier
 * process of the same pid left, older than this one, with hpatch's lines
 * alone, is emptied before the new lines go in; any other is appended to.
 */
#include "hp_test.h"
#include "hp_test_lease.h"

#include "runtime/rt_perfmap.c"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

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

/* Add a line for one function to this process's map. */
static void add_line(uint64_t start)
{
	struct hp_func func = { .name = (char *)"price" };
	const struct hp_module m = { .funcs = &func, .nr_funcs = 1 };
	struct hp_rt_func rec = { .new_addr = 0x7f0000001000, .new_size = 18 };
	const struct hp_prep pr = { .m = &m, .recs = &rec, .nr_recs = 1 };
	const struct hp_proc proc = { .pid = getpid(),
				      .mem_fd = -1,
				      .start = start };

	hp_perfmap_add(&proc, "fix-1", &pr);
}

/* The same; the map after. */
static const char *add_own(uint64_t start)
{
	static char buf[4096];
	char path[128];
	ssize_t n;
	int fd;

	add_line(start);
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

static void add_line_now(void *arg)
{
	add_line(*(const uint64_t *)arg);
}

/* A map its owner holds a write lease on (any user may, on his own
 * file): not written, at once, rather than after the lease breaks (45 s),
 * hpatchd's loop waiting meanwhile. */
static void test_map_leased(void **state)
{
	uint64_t start = own_start();
	char path[128];

	(void)state;
	plant(ours, -1);
	snprintf(path, sizeof(path), "%s/perf-%d.map", dir, (int)getpid());
	assert_true(hp_test_ms_while_leased(path, add_line_now, &start) < 1000);
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

/* A pid no process has now: a child's, reaped. */
static pid_t dead_pid(void)
{
	const pid_t pid = fork();

	assert_true(pid >= 0);
	if (!pid)
		_exit(0);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	return pid;
}

/* Write @pid's map holding @text, last written at @mtime_ns. */
static void plant_for(pid_t pid, const char *text, int64_t mtime_ns)
{
	struct timespec times[2];
	char path[128];
	FILE *f = NULL;

	snprintf(path, sizeof(path), "%s/perf-%d.map", dir, (int)pid);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	times[0] = times[1] =
		(struct timespec){ .tv_sec = mtime_ns / 1000000000LL,
				   .tv_nsec = mtime_ns % 1000000000LL };
	assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
}

static bool map_exists(pid_t pid)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/perf-%d.map", dir, (int)pid);
	return access(path, F_OK) == 0;
}

static int64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return ns_of(&t);
}

/* hpatchd's clean-up of an exited process's map: only hpatch's lines,
 * unwritten since the exit, and no process of that pid now. */
static void test_forget_exited(void **state)
{
	const pid_t gone = dead_pid();
	const int64_t exited = now_ns();
	char path[128], other[128];

	(void)state;
	plant_for(gone, ours, exited - 1000000000LL);
	assert_int_equal(hp_rt_perfmap_forget(gone, exited), 0);
	assert_false(map_exists(gone));
	/* None there: nothing to do. */
	assert_int_equal(hp_rt_perfmap_forget(gone, exited), 0);
	/* A JIT's lines in it: kept. */
	plant_for(gone, jit, exited - 1000000000LL);
	assert_int_equal(hp_rt_perfmap_forget(gone, exited), 1);
	assert_true(map_exists(gone));
	/* Written after the exit (a later process of that pid): kept. */
	plant_for(gone, ours, exited + 1000000000LL);
	assert_int_equal(hp_rt_perfmap_forget(gone, exited), 1);
	assert_true(map_exists(gone));
	/* A second link: not a file hpatch made. */
	plant_for(gone, ours, exited - 1000000000LL);
	snprintf(path, sizeof(path), "%s/perf-%d.map", dir, (int)gone);
	snprintf(other, sizeof(other), "%s/other", dir);
	assert_int_equal(link(path, other), 0);
	assert_int_equal(hp_rt_perfmap_forget(gone, exited), 1);
	assert_true(map_exists(gone));
	assert_int_equal(unlink(other), 0);
	/* A symbolic link at its path: neither followed nor removed. */
	assert_int_equal(unlink(path), 0);
	plant_for(1, ours, exited - 1000000000LL); /* (pid 1's, as target) */
	snprintf(other, sizeof(other), "%s/perf-1.map", dir);
	assert_int_equal(symlink(other, path), 0);
	assert_int_equal(hp_rt_perfmap_forget(gone, exited), 1);
	assert_true(map_exists(gone));
	assert_true(map_exists(1));
}

/* A process has the pid now (this one): asked again later. */
static void test_forget_pid_alive(void **state)
{
	const int64_t exited = now_ns();

	(void)state;
	plant_for(getpid(), ours, exited - 1000000000LL);
	assert_int_equal(hp_rt_perfmap_forget(getpid(), exited), 2);
	assert_true(map_exists(getpid()));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_earlier_process_map_emptied, setup, teardown),
		cmocka_unit_test_setup_teardown(test_own_map_appended, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_map_leased, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_jit_map_kept, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_start_unknown, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_forget_exited, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_forget_pid_alive, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
