/*
 * Unit tests for perf's maps (runtime/rt_perfmap.c, its statics reached by
 * including it), in a directory of the test's own: a map that an earlier
 * process of the same pid left, older than this one, with hpatch's lines
 * alone, is emptied before the new lines go in; any other is appended to.
 * hpatchd's clean-up makes an exited process's map a spare, in a private
 * directory, and a new map takes one of its user's; a planted directory or
 * a spare that is not hpatch's is never used. (Run as root, as the e2e
 * tests are: files of another user are made with chown.)
 */
#include "hp_test.h"
#include "hp_test_lease.h"

#include <sys/syscall.h>

/* getpid() of the code under test, counted: a process asks the kernel
 * for its pid once (hp_self_pid), never per map. */
static unsigned nr_getpid;
/* (unused while the code asks none: what the test wants) */
__attribute__((unused)) static pid_t counted_getpid(void)
{
	nr_getpid++;
	return (pid_t)syscall(SYS_getpid);
}
#define getpid counted_getpid
#include "runtime/rt_perfmap.c"
#undef getpid

#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#define OTHER_UID 65534 /* (nobody) */

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/hp-perfmap-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	perfmap_dir = dir;
	spares_off = spares_none = false;
	nr_spares_made = 0;
	claim_stale_ns = HP_PERFMAP_CLAIM_NS;
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

/* A new map is the process's user's (its own JIT may append), with no
 * change where that user is ours. */
static void new_map_owner(uid_t uid, uid_t *owner, gid_t *group)
{
	struct hp_func func = { .name = (char *)"price" };
	const struct hp_module m = { .funcs = &func, .nr_funcs = 1 };
	struct hp_rt_func rec = { .new_addr = 0x7f0000001000, .new_size = 18 };
	const struct hp_prep pr = { .m = &m, .recs = &rec, .nr_recs = 1 };
	int ready[2];
	char c, path[128];
	struct stat st;
	pid_t child;

	assert_int_equal(pipe(ready), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		if ((uid &&
		     (setresgid(uid, uid, uid) || setresuid(uid, uid, uid))) ||
		    write(ready[1], "r", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	hp_perfmap_add(&(struct hp_proc){ .pid = child, .mem_fd = -1 }, "fix-1",
		       &pr);
	snprintf(path, sizeof(path), "%s/perf-%d.map", dir, (int)child);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	assert_int_equal(stat(path, &st), 0);
	*owner = st.st_uid;
	*group = st.st_gid;
}

static void test_new_map_owner(void **state)
{
	uid_t uid;
	gid_t gid;

	(void)state;
	new_map_owner(OTHER_UID, &uid, &gid);
	assert_int_equal(uid, OTHER_UID);
	assert_int_equal(gid, OTHER_UID);
	new_map_owner(0, &uid, &gid);
	assert_int_equal(uid, geteuid());
	assert_int_equal(gid, getegid());
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

/* What hpatchd finds at its start: the regular files perf-PID.map of
 * pids no process has, oldest first; nothing else. */
static void test_left_listed(void **state)
{
	const pid_t a = dead_pid(), b = dead_pid(), c = dead_pid();
	const int64_t now = now_ns();
	struct hp_rt_perfmap_left *v = NULL;
	char path[128], name[160];
	size_t nr = 0;

	(void)state;
	plant_for(a, ours, now - 5000000000LL);
	plant_for(b, jit, now - 9000000000LL);	       /* (judged by forget) */
	plant_for(getpid(), ours, now - 9000000000LL); /* alive */
	/* Not of the form, a link, a directory. */
	snprintf(path, sizeof(path), "%s/perf-0%d.map", dir, (int)c);
	assert_int_equal(close(open(path, O_CREAT | O_WRONLY, 0644)), 0);
	snprintf(path, sizeof(path), "%s/perf-%d.map.tmp", dir, (int)c);
	assert_int_equal(close(open(path, O_CREAT | O_WRONLY, 0644)), 0);
	snprintf(path, sizeof(path), "%s/perf-%d.map", dir, (int)c);
	snprintf(name, sizeof(name), "%s/perf-0%d.map", dir, (int)c);
	assert_int_equal(symlink(name, path), 0);
	snprintf(path, sizeof(path), "%s/perf-1x.map", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_hp_ok(hp_rt_perfmap_left(&v, &nr));
	assert_int_equal(nr, 2);
	assert_int_equal(v[0].pid, b);
	assert_int_equal(v[1].pid, a);
	assert_true(v[0].mtime_ns < v[1].mtime_ns);
	free(v);
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

/* The spare directory's path. */
static const char *spares(void)
{
	static char path[128];

	snprintf(path, sizeof(path), "%s/" HP_PERFMAP_SPARES ".%u", dir,
		 (unsigned)geteuid());
	return path;
}

/* The number of entries of directory @path but "." and "..". */
static int nr_entries(const char *path)
{
	DIR *d = opendir(path);
	const struct dirent *de = NULL;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	return n;
}

static ino_t ino_of(const char *path)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	return st.st_ino;
}

static const char *own_map(void)
{
	static char path[128];

	snprintf(path, sizeof(path), "%s/perf-%d.map", dir, (int)getpid());
	return path;
}

static const char *make_slot_path(const char *slot)
{
	static char path[160];

	snprintf(path, sizeof(path), "%s/%s", spares(), slot);
	return path;
}

/* Make spare @slot (a file holding @text, of the process's user), if
 * there is no such spare yet; Return: its path. */
static const char *make_slot(const char *slot, const char *text)
{
	const char *path = make_slot_path(slot);
	int fd;

	if (access(spares(), F_OK))
		assert_int_equal(mkdir(spares(), 0700), 0);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

/* A dead process's map, cleaned up by hpatchd: its inode. */
static ino_t forget_one(const char *text)
{
	const pid_t gone = dead_pid();
	const int64_t exited = now_ns();
	char path[128];
	ino_t ino;

	plant_for(gone, text, exited - 1000000000LL);
	snprintf(path, sizeof(path), "%s/perf-%d.map", dir, (int)gone);
	ino = ino_of(path);
	assert_int_equal(hp_rt_perfmap_forget(gone, exited), 0);
	assert_false(map_exists(gone));
	return ino;
}

/* A map cleaned up becomes a spare; a new map of its user takes it,
 * holding the new lines alone (the old ones were longer). */
static void test_spare_reused(void **state)
{
	struct stat st;
	ino_t ino;

	(void)state;
	ino = forget_one("7f0000002000 20 old_fn [hpatch:fix-0]\n"
			 "7f0000003000 20 old_gn [hpatch:fix-0]\n");
	assert_int_equal(nr_entries(spares()), 1);
	assert_int_equal(lstat(spares(), &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 077, 0);
	assert_string_equal(add_own(own_start()), NEW);
	assert_int_equal(ino_of(own_map()), ino);
	assert_int_equal(nr_entries(spares()), 0);
	/* None left: a new map is created. */
	assert_int_equal(unlink(own_map()), 0);
	assert_string_equal(add_own(own_start()), NEW);
	assert_int_equal(nr_entries(spares()), 0);
}

/* A map its group or others could write is removed, never a spare: one
 * of them may hold it open for writing, into a later process's map. */
static void test_spare_not_writable_by_others(void **state)
{
	const pid_t gone = dead_pid();
	const int64_t exited = now_ns();
	char path[128];

	(void)state;
	plant_for(gone, ours, exited - 1000000000LL);
	snprintf(path, sizeof(path), "%s/perf-%d.map", dir, (int)gone);
	assert_int_equal(chmod(path, 0666), 0);
	assert_int_equal(hp_rt_perfmap_forget(gone, exited), 0);
	assert_false(map_exists(gone));
	assert_true(nr_entries(spares()) <= 0); /* (-1: none made yet) */
}

/* A spare taken asks the kernel for no pid: hpatchd makes one system
 * call fewer a map (tests/e2e/hpatchd_calls.sh counts getpid()). */
static void test_spare_asks_no_pid(void **state)
{
	ino_t ino;

	(void)state;
	(void)hp_self_pid(); /* (asked once per process: not here) */
	ino = forget_one(ours);
	nr_getpid = 0;
	assert_string_equal(add_own(own_start()), NEW);
	assert_int_equal(ino_of(own_map()), ino);
	assert_int_equal(nr_getpid, 0);
}

/* A map already there: appended to as before, the spare kept. */
static void test_spare_target_exists(void **state)
{
	ino_t ino, spare;

	(void)state;
	spare = forget_one(ours);
	plant(ours, -1);
	ino = ino_of(own_map());
	assert_string_equal(add_own(own_start()), "7f0000002000 20 old_fn "
						  "[hpatch:fix-0]\n" NEW);
	assert_int_equal(ino_of(own_map()), ino);
	assert_int_equal(nr_entries(spares()), 1);
	/* (and still good for the next) */
	assert_int_equal(unlink(own_map()), 0);
	assert_string_equal(add_own(own_start()), NEW);
	assert_int_equal(ino_of(own_map()), spare);
}

/* A map made at its path between the look and the rename (a JIT's): the
 * spare's rename fails, the spare goes back, that file is not touched. */
static void test_spare_target_made_since(void **state)
{
	const struct hp_buf out = { .data = (uint8_t *)NEW,
				    .len = strlen(NEW) };
	struct stat proc_st;
	char buf[64] = { 0 };
	ino_t spare;
	int dirfd, fd;

	(void)state;
	spare = ino_of(make_slot("7", ours));
	plant(jit, 3600);
	assert_int_equal(stat("/proc/self", &proc_st), 0);
	dirfd = open_spares(false);
	assert_true(dirfd >= 0);
	assert_int_equal(use_spare(dirfd, "7", &proc_st, own_map(), &out),
			 -EEXIST);
	close(dirfd);
	fd = open(own_map(), O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, sizeof(buf) - 1), (ssize_t)strlen(jit));
	close(fd);
	assert_string_equal(buf, jit);
	assert_int_equal(nr_entries(spares()), 1);
	assert_int_equal(ino_of(make_slot_path("7")), spare);
}

/* @setup_dir planted at the spare directory's path: no spare is made in
 * it, none there is taken, maps are written and removed as before. */
static void planted_dir(void (*setup_dir)(const char *path))
{
	const char *spare = NULL;
	ino_t ino;

	setup_dir(spares());
	/* A file of this user in it, as a spare would be. */
	spare = make_slot("0", ours);
	ino = ino_of(spare);
	forget_one(ours);
	assert_int_equal(nr_entries(spares()), 1);
	assert_true(spares_off);
	assert_string_equal(add_own(own_start()), NEW);
	assert_int_not_equal(ino_of(own_map()), ino);
	assert_int_equal(ino_of(spare), ino);
}

static void mkdir_0755(const char *path)
{
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(chmod(path, 0755), 0);
}

static void mkdir_other_owner(const char *path)
{
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(chown(path, OTHER_UID, OTHER_UID), 0);
}

static void symlink_to_dir(const char *path)
{
	char target[160];

	snprintf(target, sizeof(target), "%s/elsewhere", dir);
	assert_int_equal(mkdir(target, 0700), 0);
	assert_int_equal(symlink(target, path), 0);
}

static void test_spare_dir_planted(void **state)
{
	(void)state;
	planted_dir(mkdir_0755);
}

static void test_spare_dir_other_owner(void **state)
{
	(void)state;
	planted_dir(mkdir_other_owner);
}

static void test_spare_dir_symlink(void **state)
{
	(void)state;
	planted_dir(symlink_to_dir);
}

/* The map made for this process (unlinked after): a regular file, with
 * the new lines, not inode @bad. */
static void map_not(ino_t bad)
{
	struct stat st;

	spares_none = false;
	assert_string_equal(add_own(own_start()), NEW);
	assert_int_equal(lstat(own_map(), &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_not_equal(st.st_ino, bad);
	assert_int_equal(unlink(own_map()), 0);
}

/* A spare that is not hpatch's (a second link, another user's, a fifo) is
 * never used; another user's stays for that user. */
static void test_spare_not_ours(void **state)
{
	const char *spare = NULL;
	char other[160];
	struct stat st;

	(void)state;
	snprintf(other, sizeof(other), "%s/other", dir);
	spare = make_slot("1", ours);
	assert_int_equal(link(spare, other), 0);
	map_not(ino_of(other));
	assert_int_equal(stat(other, &st), 0); /* (not written) */
	assert_int_equal(st.st_size, (off_t)strlen(ours));
	assert_int_equal(unlink(other), 0);
	unlink(spare);

	spare = make_slot("2", ours);
	assert_int_equal(chown(spare, OTHER_UID, OTHER_UID), 0);
	st.st_ino = ino_of(spare);
	map_not(st.st_ino);
	assert_int_equal(ino_of(spare), st.st_ino); /* (kept for them) */
	assert_int_equal(unlink(spare), 0);

	/* (A fifo found is removed: its inode number may be the new map's;
	 * that the map is a regular file is what tells.) */
	spare = make_slot_path("3");
	assert_int_equal(mkfifo(spare, 0644), 0);
	map_not(0);
}

/* The map's owner put another file at its path between the checks and
 * the move (as if: the checked file is another one): that file goes back
 * to its path, no spare is made of it. */
static void test_spare_swapped(void **state)
{
	struct stat checked;
	char path[128];
	ino_t ino;

	(void)state;
	plant(ours, 3600);
	ino = ino_of(own_map());
	plant_for(1, ours, now_ns()); /* (the file checked: pid 1's) */
	snprintf(path, sizeof(path), "%s/perf-1.map", dir);
	assert_int_equal(lstat(path, &checked), 0);
	assert_int_equal(make_spare(own_map(), &checked), 0);
	assert_int_equal(ino_of(own_map()), ino);
	assert_int_equal(nr_entries(spares()), 0);
}

/* A claim named by this pid alone, as another hpatch process of the same
 * pid in another pid namespace would name its claim of a spare (here
 * another user's): never touched, never placed; the spare is taken. */
static void test_spare_claim_same_pid(void **state)
{
	char claim[160];
	ino_t spare, other;
	int fd;

	(void)state;
	spare = forget_one(ours);
	snprintf(claim, sizeof(claim), "%s/claim.%d", spares(), (int)getpid());
	fd = open(claim, O_WRONLY | O_CREAT | O_EXCL, 0644);
	assert_true(fd >= 0);
	assert_int_equal(fchown(fd, OTHER_UID, OTHER_UID), 0);
	close(fd);
	other = ino_of(claim);
	assert_string_equal(add_own(own_start()), NEW);
	assert_int_equal(ino_of(own_map()), spare);
	assert_int_equal(ino_of(claim), other);
	assert_int_equal(nr_entries(spares()), 1);
}

/* A claim left by a process killed between its renames: kept while it
 * may be in use, removed when old (HP_PERFMAP_CLAIM_NS; 0 here). */
static void test_spare_claim_left(void **state)
{
	const char *claim = NULL;

	(void)state;
	claim = make_slot("claim.1.00000000000000ff", ours);
	assert_string_equal(add_own(own_start()), NEW);
	assert_int_equal(nr_entries(spares()), 1);
	assert_int_equal(unlink(own_map()), 0);
	spares_none = false;
	claim_stale_ns = 0;
	assert_string_equal(add_own(own_start()), NEW);
	assert_int_equal(access(claim, F_OK), -1);
	assert_int_equal(nr_entries(spares()), 0);
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
		cmocka_unit_test_setup_teardown(test_new_map_owner, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_left_listed, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_forget_exited, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_forget_pid_alive, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_spare_reused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_spare_not_writable_by_others, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spare_asks_no_pid, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_spare_target_exists, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_spare_target_made_since,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_spare_dir_planted, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_spare_dir_other_owner,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_spare_dir_symlink, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_spare_not_ours, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_spare_swapped, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_spare_claim_same_pid,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_spare_claim_left, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
