/*
 * Unit tests for common/: error texts, JSON/text output, buffers, hex,
 * atomic file writes, option parsing and the checks of trusted paths.
 */
#include "hp_test.h"
#include "hp_test_lease.h"

#include "common/exit.h"
#include "common/hp_cli.h"
#include "common/hp_log.h"
#include "common/hp_out.h"
#include "common/hp_secure.h"
#include "common/hp_util.h"

#include <errno.h>
#include <time.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void test_strerror(void **state)
{
	(void)state;
	assert_string_equal(hp_strerror(0), "success");
	assert_string_equal(hp_strerror(-ENOENT), strerror(ENOENT));
	assert_string_equal(hp_strerror(-HP_E_BUSY),
			    "function is in use by a thread");
	assert_string_equal(hp_err_name(-HP_E_BUSY), "HP_E_BUSY");
	assert_string_equal(hp_err_name(-HP_E_REMOVED), "HP_E_REMOVED");
	for (int c = HP_E_BASE; c < HP_E_LAST_; c++)
		assert_non_null(strstr(hp_err_name(-c), "HP_E_"));
}

static char *render(bool json)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);
	struct hp_out o;
	static const uint8_t bytes[] = { 0xde, 0xad };

	hp_out_init(&o, fp, json);
	hp_out_str(&o, "name", "a \"quoted\"\nline\\%d", 1);
	hp_out_begin_array(&o, "items");
	hp_out_begin_object(&o, NULL);
	hp_out_u64(&o, "n", 42);
	hp_out_bool(&o, "ok", true);
	hp_out_end_object(&o);
	hp_out_str(&o, NULL, "x");
	hp_out_end_array(&o);
	hp_out_hex(&o, "id", bytes, sizeof(bytes));
	hp_out_i64(&o, "neg", -3);
	hp_out_finish(&o);
	fclose(fp);
	return buf;
}

static void test_out_json(void **state)
{
	char *s = render(true);

	(void)state;
	assert_string_equal(
		s, "{\"schema_version\":1,\"name\":\"a "
		   "\\\"quoted\\\"\\nline\\\\1\","
		   "\"items\":[{\"n\":42,\"ok\":true},\"x\"],\"id\":\"dead\","
		   "\"neg\":-3}\n");
	free(s);
}

/* Every character that JSON must escape is, wherever it stands; the
 * rest (UTF-8, DEL) goes out as it is. */
static void test_out_json_escapes(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "", "\"\"" },
		{ "plain", "\"plain\"" },
		{ "\"", "\"\\\"\"" },
		{ "\\end\\", "\"\\\\end\\\\\"" },
		{ "a\tb\nc", "\"a\\tb\\nc\"" },
		{ "\x01x\x1f", "\"\\u0001x\\u001f\"" },
		{ "caf\xc3\xa9 \x7f", "\"caf\xc3\xa9 \x7f\"" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *buf = NULL, want[64];
		size_t len = 0;
		FILE *fp = open_memstream(&buf, &len);
		struct hp_out o;

		assert_non_null(fp);
		hp_out_init(&o, fp, true);
		hp_out_str(&o, "k", "%s", cases[i].in);
		hp_out_finish(&o);
		fclose(fp);
		snprintf(want, sizeof(want),
			 "{\"schema_version\":1,\"k\":%s}\n", cases[i].out);
		assert_string_equal(buf, want);
		free(buf);
	}
}

static void test_out_text(void **state)
{
	char *s = render(false);

	(void)state;
	assert_non_null(
		strstr(s, "items:\n  -\n    n: 42\n    ok: true\n  - x\n"));
	assert_non_null(strstr(s, "id: dead\n"));
	free(s);
}

static void test_buf(void **state)
{
	struct hp_buf b = { 0 };

	(void)state;
	assert_hp_ok(hp_buf_append(&b, "abc", 3));
	assert_hp_ok(hp_buf_align(&b, 8));
	assert_int_equal(b.len, 8);
	assert_int_equal(b.data[5], 0);
	for (int i = 0; i < 1000; i++)
		assert_hp_ok(hp_buf_append(&b, "0123456789", 10));
	assert_int_equal(b.len, 10008);
	assert_memory_equal(b.data + 10000 - 2, "0123456789", 10);
	hp_buf_release(&b);
	assert_null(b.data);
}

static void test_grow(void **state)
{
	uint32_t *v = NULL, *before = NULL;
	size_t cap = 0, nr = 0;

	(void)state;
	for (uint32_t i = 0; i < 100; i++) {
		assert_hp_ok(hp_grow(&v, &cap, nr, sizeof(*v), 8));
		assert_true(nr < cap);
		v[nr++] = i;
	}
	assert_int_equal(cap, 128); /* 8, doubled four times */
	for (uint32_t i = 0; i < 100; i++)
		assert_int_equal(v[i], i);
	before = v; /* room left: nothing moves */
	assert_hp_ok(hp_grow(&v, &cap, 127, sizeof(*v), 8));
	assert_ptr_equal(v, before);
	assert_int_equal(cap, 128);
	/* a size that would overflow: refused, the array left as it was */
	assert_int_equal(hp_grow(&v, &cap, 128, SIZE_MAX / 64, 8), -ENOMEM);
	assert_ptr_equal(v, before);
	assert_int_equal(cap, 128);
	free(v);
}

static void test_hex(void **state)
{
	const uint8_t in[] = { 0x00, 0x7f, 0xab, 0xff };
	uint8_t out[4];
	char hex[9];

	(void)state;
	hp_hex(hex, in, sizeof(in));
	assert_string_equal(hex, "007fabff");
	assert_hp_ok(hp_unhex(out, sizeof(out), "007FABff"));
	assert_memory_equal(out, in, sizeof(in));
	assert_int_equal(hp_unhex(out, 2, "0g"), -EINVAL);
	assert_int_equal(hp_unhex(out, 2, "01"), -EINVAL); /* too short */
}

static void test_le(void **state)
{
	uint8_t b[8];

	(void)state;
	hp_put_le64(b, 0x0102030405060708ULL);
	assert_int_equal(b[0], 8);
	assert_int_equal(b[7], 1);
	assert_true(hp_get_le64(b) == 0x0102030405060708ULL);
	hp_put_le16(b, 0xbeef);
	assert_int_equal(hp_get_le16(b), 0xbeef);
}

static void test_files(void **state)
{
	char dir[] = "/tmp/hp-test-XXXXXX";
	char path[64], stale[96];
	uint8_t *data = NULL;
	size_t len = 0;
	struct stat st;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/f", dir);
	assert_hp_ok(hp_write_file(path, "secret", 6, 0600, HP_WRITE_EXCL));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(hp_write_file(path, "x", 1, 0600, HP_WRITE_EXCL),
			 -EEXIST);
	assert_hp_ok(hp_read_file(path, 100, &data, &len));
	assert_int_equal(len, 6);
	assert_memory_equal(data, "secret", 6);
	free(data);
	assert_hp_err(hp_read_file(path, 5, &data, &len), HP_E_TOOBIG);
	assert_hp_ok(hp_write_file(path, "new", 3, 0644, 0));
	assert_hp_ok(hp_read_file(path, 100, &data, &len));
	assert_memory_equal(data, "new", 3);
	free(data);
	/* Without fsync: the same content, the same atomic replace. */
	assert_hp_ok(hp_write_file(path, "snap", 4, 0644, HP_WRITE_NOSYNC));
	assert_hp_ok(hp_read_file(path, 100, &data, &len));
	assert_int_equal(len, 4);
	assert_memory_equal(data, "snap", 4);
	free(data);
	unlink(path);
	/* A writer of our pid killed mid-write (a pid reused after a boot, by
	 * a daemon started in the same order) left its temporary file: not in
	 * our way, and not ours to remove. */
	snprintf(stale, sizeof(stale), "%s.tmp.%d", path, (int)getpid());
	assert_hp_ok(hp_write_file(stale, "half", 4, 0600, 0));
	assert_hp_ok(hp_write_file(path, "after", 5, 0644, 0));
	assert_hp_ok(hp_read_file(path, 100, &data, &len));
	assert_memory_equal(data, "after", 5);
	free(data);
	assert_int_equal(stat(stale, &st), 0);
	unlink(stale);
	unlink(path);
	rmdir(dir);
}

static void quiet_sink(enum hp_log_level l, const char *m, void *c)
{
	(void)l;
	(void)m;
	(void)c;
}

static void test_cli(void **state)
{
	const char *name = NULL;
	struct hp_strlist pids = { 0 };
	bool flag = false;
	long n = 0;
	int first = 0;
	const struct hp_opt table[] = {
		{ "name", 'n', HP_OPT_STR, &name, "NAME", "a name" },
		{ "pid", 'p', HP_OPT_LIST, &pids, "PID", "pids" },
		{ "flag", 0, HP_OPT_FLAG, &flag, NULL, "a flag" },
		{ "num", 0, HP_OPT_LONG, &n, "N", "a number" },
		{ 0 },
	};
	/* Writable copies: getopt may permute argv. */
#define ARG(s) ((char[]){ s })
	char *argv1[] = { ARG("x"),	 ARG("-n"),    ARG("foo"),
			  ARG("-p"),	 ARG("1"),     ARG("--pid=2"),
			  ARG("--flag"), ARG("--num"), ARG("12"),
			  ARG("rest"),	 NULL };
	char *argv2[] = { ARG("x"), ARG("--num"), ARG("12x"), NULL };
	char *argv3[] = { ARG("x"), ARG("--nope"), NULL };
#undef ARG

	(void)state;
	hp_log_set_sink(quiet_sink, NULL);
	assert_int_equal(hp_cli_parse("t", "", table, 10, argv1, &first), -1);
	assert_string_equal(name, "foo");
	assert_int_equal(pids.nr, 2);
	assert_string_equal(pids.items[1], "2");
	assert_true(flag);
	assert_int_equal(n, 12);
	assert_string_equal(argv1[first], "rest");
	assert_int_equal(hp_cli_parse("t", "", table, 3, argv2, &first),
			 HP_EXIT_USAGE);
	assert_int_equal(hp_cli_parse("t", "", table, 2, argv3, &first),
			 HP_EXIT_USAGE);
	hp_log_set_sink(NULL, NULL);
	hp_strlist_release(&pids);
}

struct captured {
	char msg[512];
	int n;
};

static void capture_sink(enum hp_log_level l, const char *m, void *c)
{
	struct captured *cap = c;

	(void)l;
	snprintf(cap->msg, sizeof(cap->msg), "%s", m);
	cap->n++;
}

static void test_log(void **state)
{
	struct captured cap = { 0 };

	(void)state;
	hp_log_set_sink(capture_sink, &cap);
	errno = EBADF;
	assert_int_equal(hp_error_rc(-ENOENT, "'%s'", "f"), -ENOENT);
	assert_int_equal(errno, EBADF); /* logging preserves errno */
	assert_string_equal(cap.msg, "'f': No such file or directory");
	assert_int_equal(hp_log_set_debug("reloc,bogus"), -EINVAL);
	assert_string_equal(cap.msg, "--debug: unknown category 'bogus'");
	hp_log_set_sink(NULL, NULL);
}

/*
 * Messages held are said in their order when the hold is released to say
 * them, or not at all; an inner hold's said ones are the outer's to
 * decide, its dropped ones gone; a hold's end says nothing of before it.
 */
static void test_log_hold(void **state)
{
	struct captured cap = { 0 };
	size_t outer, inner;

	(void)state;
	hp_log_set_sink(capture_sink, &cap);
	outer = hp_log_hold();
	hp_warn("first");
	inner = hp_log_hold();
	hp_warn("dropped");
	hp_log_release(inner, false);
	inner = hp_log_hold();
	hp_warn("kept");
	hp_log_release(inner, true);
	assert_int_equal(cap.n, 0);
	hp_log_release(outer, true);
	assert_int_equal(cap.n, 2);
	assert_string_equal(cap.msg, "kept");
	outer = hp_log_hold();
	hp_warn("never");
	hp_log_release(outer, false);
	hp_warn("now");
	assert_int_equal(cap.n, 3);
	assert_string_equal(cap.msg, "now");
	hp_log_set_sink(NULL, NULL);
}

/*
 * Repeats quiet: a message said already is not said again, nor the hint
 * that follows it; a hint after a new message is; off, all are said.
 */
static void test_log_quiet_repeats(void **state)
{
	struct captured cap = { 0 };

	(void)state;
	hp_log_set_sink(capture_sink, &cap);
	hp_log_quiet_repeats(true);
	for (int i = 0; i < 3; i++) {
		hp_error(-EBUSY, "tid %d: busy", 7);
		hp_hint("retry");
	}
	assert_int_equal(cap.n, 2);
	hp_error(-EBUSY, "tid %d: busy", 8);
	hp_hint("retry");
	assert_int_equal(cap.n, 4);
	assert_string_equal(cap.msg, "retry");
	hp_log_quiet_repeats(false);
	hp_error(-EBUSY, "tid %d: busy", 7);
	assert_int_equal(cap.n, 5);
	hp_log_set_sink(NULL, NULL);
}

/*
 * A directory found secure is not walked again for a moment, but a
 * change to it (its mode, its owner, another directory in its place) is
 * seen at once.
 */
static void test_secure_dir_seen(void **state)
{
	char dir[] = "/tmp/hp-secure-XXXXXX", sub[64];

	(void)state;
	hp_log_set_sink(NULL, NULL);
	assert_non_null(mkdtemp(dir));
	snprintf(sub, sizeof(sub), "%s/d", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_hp_ok(hp_secure_dir(sub, "test directory"));
	assert_hp_ok(hp_secure_dir(sub, "test directory")); /* seen */
	assert_int_equal(chmod(sub, 0777), 0);
	assert_hp_err(hp_secure_dir(sub, "test directory"), HP_E_INSECURE);
	assert_int_equal(chmod(sub, 0700), 0);
	assert_hp_ok(hp_secure_dir(sub, "test directory"));
	/* Another in its place, writable by others: walked again. */
	assert_int_equal(rmdir(sub), 0);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(chmod(sub, 0770), 0);
	assert_hp_err(hp_secure_dir(sub, "test directory"), HP_E_INSECURE);
	assert_int_equal(rmdir(sub), 0);
	assert_int_equal(hp_secure_dir(sub, "test directory"), -ENOENT);
	assert_int_equal(rmdir(dir), 0);
}

/* hp_open_regular: a regular file (through a link too) is opened; a
 * device node is refused without being opened; a missing path says so. */
static void test_open_regular(void **state)
{
	char path[] = "/tmp/hp-regular-XXXXXX", link[64], c = 0;
	struct stat st, want;
	const int tmp = mkstemp(path);
	int fd;

	(void)state;
	assert_true(tmp >= 0);
	assert_int_equal(write(tmp, "x", 1), 1);
	assert_int_equal(fstat(tmp, &want), 0);
	close(tmp);
	snprintf(link, sizeof(link), "%s.link", path);
	assert_int_equal(symlink(path, link), 0);
	fd = hp_open_regular(link, &st);
	assert_true(fd >= 0);
	assert_int_equal(st.st_ino, want.st_ino);
	assert_int_equal(read(fd, &c, 1), 1);
	assert_int_equal(c, 'x');
	close(fd);
	assert_int_equal(hp_open_regular("/dev/null", &st), -EINVAL);
	assert_true(S_ISCHR(st.st_mode));
	unlink(link);
	unlink(path);
	assert_int_equal(hp_open_regular(path, &st), -ENOENT);
}

struct leased_open {
	const char *path;
	struct stat st;
	int fd;
};

static void open_leased(void *arg)
{
	struct leased_open *o = arg;

	o->fd = hp_open_regular(o->path, &o->st);
}

/* hp_open_regular on a file another process holds a write lease on (as
 * any user may on his own file, mapped by a process hpatchd looks at):
 * refused at once, not blocked until the lease breaks (45 s). */
static void test_open_regular_leased(void **state)
{
	char path[] = "/tmp/hp-leased-XXXXXX";
	const int tmp = mkstemp(path);
	struct leased_open o = { .path = path, .fd = -1 };
	long ms;

	(void)state;
	assert_true(tmp >= 0);
	close(tmp);
	ms = hp_test_ms_while_leased(path, open_leased, &o);
	unlink(path);
	if (o.fd >= 0)
		close(o.fd);
	assert_true(ms < 1000);
	assert_int_equal(o.fd, -EWOULDBLOCK);
}

/* hp_self_pid: asked once, and asked again in a fork's child (the
 * workers of `hpatch apply --all` tell their own helper thread by it). */
/* The second an expiry names is past as soon as date(1) says so: checked
 * right at the turn of the second, where a tick-old clock is behind. */
static void test_expired_at_turn(void **state)
{
	struct timespec ts;
	time_t was;

	(void)state;
	assert_false(hp_expired(0));
	clock_gettime(CLOCK_REALTIME, &ts);
	assert_false(hp_expired((uint64_t)ts.tv_sec + 1));
	for (int turn = 0; turn < 2; turn++) {
		clock_gettime(CLOCK_REALTIME, &ts);
		was = ts.tv_sec;
		while (ts.tv_sec == was)
			clock_gettime(CLOCK_REALTIME, &ts);
		assert_true(hp_expired((uint64_t)was));
		assert_false(hp_expired((uint64_t)ts.tv_sec));
	}
}

static void test_self_pid(void **state)
{
	const pid_t parent = getpid();
	pid_t child;
	int status = 0;

	(void)state;
	assert_int_equal(hp_self_pid(), parent);
	assert_int_equal(hp_self_pid(), parent);
	child = fork();
	assert_true(child >= 0);
	if (child == 0)
		_exit(hp_self_pid() == getpid() && hp_self_pid() != parent ? 0
									   : 1);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(hp_self_pid(), parent);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strerror),
		cmocka_unit_test(test_out_json),
		cmocka_unit_test(test_out_json_escapes),
		cmocka_unit_test(test_out_text),
		cmocka_unit_test(test_buf),
		cmocka_unit_test(test_grow),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_le),
		cmocka_unit_test(test_files),
		cmocka_unit_test(test_cli),
		cmocka_unit_test(test_log),
		cmocka_unit_test(test_log_hold),
		cmocka_unit_test(test_log_quiet_repeats),
		cmocka_unit_test(test_secure_dir_seen),
		cmocka_unit_test(test_open_regular),
		cmocka_unit_test(test_open_regular_leased),
		cmocka_unit_test(test_expired_at_turn),
		cmocka_unit_test(test_self_pid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
