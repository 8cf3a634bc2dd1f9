/*
 * Unit tests for agent/: the policy file, the systemd unit of a cgroup
 * line, and the daemon's view file read back as written.
 */
#include "hp_test.h"

#include "agent/agent.h"
#include "agent/agent_int.h"
#include "common/hp_log.h"
#include "common/hp_util.h"
#include "runtime/runtime_int.h"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/user.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/sysmacros.h>
#include <signal.h>
#include <sys/syscall.h>
#include <errno.h>
#include <inttypes.h>
#include <link.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[] = "/tmp/hp_agent_XXXXXX";

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[64];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

static int load_text(struct hp_policy *pol, const char *text)
{
	char path[128];
	FILE *fp = NULL;

	snprintf(path, sizeof(path), "%s/hpatch.conf", dir);
	fp = fopen(path, "w");
	fputs(text, fp);
	fclose(fp);
	return hp_policy_load(pol, path, false);
}

static void quiet(enum hp_log_level level, const char *msg, void *ctx)
{
	(void)level;
	(void)msg;
	++*(int *)ctx;
}

static void test_policy_defaults(void **state)
{
	struct hp_policy pol;
	char path[128];

	(void)state;
	snprintf(path, sizeof(path), "%s/missing.conf", dir);
	assert_hp_ok(hp_policy_load(&pol, path, true));
	assert_true(pol.auto_apply);
	assert_int_equal(pol.nr_retry, 5);
	assert_int_equal(pol.retry_ms[0], 1000);
	assert_int_equal(pol.attempt_timeout_ms, 100);
	assert_int_equal(pol.window_start, -1);
	assert_true(hp_policy_in_window(&pol, time(NULL)));
	assert_true(hp_policy_key_allowed(&pol, "0011223344556677"));
	assert_null(hp_policy_excluded(&pol, "/usr/bin/x", ""));
	assert_null(hp_policy_fallback(&pol, "/usr/bin/x", "x.service"));
	hp_policy_release(&pol);
	/* Named on the command line, a missing file is an error. */
	hp_log_set_sink(quiet, &(int){ 0 });
	assert_int_equal(hp_policy_load(&pol, path, false), -ENOENT);
	hp_log_set_sink(NULL, NULL);
}

static void test_policy_full(void **state)
{
	struct hp_policy pol;
	const struct hp_rule *r = NULL;

	(void)state;
	assert_hp_ok(load_text(
		&pol, "[apply]\n"
		      "automatic = no\n"
		      "trusted_keys = 00112233AABBCCDD, 0123456789abcdef\n"
		      "retry = 500ms 2s 1m\n"
		      "attempt_timeout = 250ms\n"
		      "rescan = 30s\n"
		      "window = 22:30-02:00\n"
		      "[metrics]\n"
		      "textfile = /var/lib/node_exporter/hpatch.prom\n"
		      "[exclude]\n"
		      "unit = sshd.service\n"
		      "exe = /usr/sbin/*\n"
		      "[fallback]\n"
		      "unit nginx.service = restart\n"
		      "exe /opt/app/* = command /usr/local/bin/page-ops\n"
		      "exe /opt/* = none\n"));
	assert_false(pol.auto_apply);
	assert_int_equal(pol.nr_keys, 2);
	assert_true(hp_policy_key_allowed(&pol, "00112233aabbccdd"));
	assert_false(hp_policy_key_allowed(&pol, "ffffffffffffffff"));
	assert_int_equal(pol.nr_retry, 3);
	assert_int_equal(pol.retry_ms[2], 60000);
	assert_int_equal(pol.attempt_timeout_ms, 250);
	assert_int_equal(pol.rescan_ms, 30000);
	assert_int_equal(pol.window_start, 22 * 60 + 30);
	assert_int_equal(pol.window_end, 120);
	assert_string_equal(pol.metrics_path,
			    "/var/lib/node_exporter/hpatch.prom");
	r = hp_policy_excluded(&pol, "/usr/bin/x", "sshd.service");
	assert_non_null(r);
	assert_string_equal(r->pattern, "sshd.service");
	assert_non_null(hp_policy_excluded(&pol, "/usr/sbin/cron", ""));
	assert_null(hp_policy_excluded(&pol, "/usr/bin/cron", "cron.service"));
	r = hp_policy_fallback(&pol, "/usr/sbin/nginx", "nginx.service");
	assert_int_equal(r->kind, HP_RULE_FALLBACK_RESTART);
	r = hp_policy_fallback(&pol, "/opt/app/bin/srv", "app.service");
	assert_int_equal(r->kind, HP_RULE_FALLBACK_COMMAND);
	assert_string_equal(r->command, "/usr/local/bin/page-ops");
	/* First match wins: /opt/app/ above /opt/. */
	r = hp_policy_fallback(&pol, "/opt/other/srv", "");
	assert_int_equal(r->kind, HP_RULE_FALLBACK_NONE);
	assert_null(hp_policy_fallback(&pol, "/usr/bin/x", "x.service"));
	assert_true(hp_policy_uses_units(&pol));
	hp_policy_release(&pol);
}

static void test_policy_include(void **state)
{
	struct hp_policy pol;

	(void)state;
	assert_hp_ok(load_text(&pol, "[include]\nexe = /srv/*\n"
				     "[exclude]\nexe = /srv/legacy/*\n"));
	assert_null(hp_policy_excluded(&pol, "/srv/api", ""));
	assert_non_null(hp_policy_excluded(&pol, "/usr/bin/api", ""));
	assert_non_null(hp_policy_excluded(&pol, "/srv/legacy/x", ""));
	/* Unreadable executable (a kernel thread): never included. */
	assert_non_null(hp_policy_excluded(&pol, "", ""));
	/* No rule names a unit: hpatchd need not read any. */
	assert_false(hp_policy_uses_units(&pol));
	hp_policy_release(&pol);
}

/* An executable path not readable whole (longer than PATH_MAX): out of
 * reach wherever a rule names executables, since it might match one. */
static void test_policy_exe_unknown(void **state)
{
	struct hp_policy pol;
	const struct hp_rule *r = NULL;

	(void)state;
	assert_hp_ok(load_text(&pol, "[exclude]\nexe = /srv/legacy/*\n"));
	r = hp_policy_excluded(&pol, NULL, "");
	assert_ptr_equal(r, &pol.exe_unknown);
	assert_string_equal(r->pattern,
			    "an executable path not readable whole");
	assert_null(hp_policy_fallback(&pol, NULL, ""));
	/* Replaced on disk since its exec (an upgrade): still excluded,
	 * and still included by the rule naming its path. */
	assert_ptr_equal(
		hp_policy_excluded(&pol, "/srv/legacy/a (deleted)", ""),
		&pol.rules[0]);
	assert_null(hp_policy_excluded(&pol, "/srv/api (deleted)", ""));
	hp_policy_release(&pol);
	assert_hp_ok(load_text(&pol, "[include]\nexe = /srv/api\n"));
	assert_null(hp_policy_excluded(&pol, "/srv/api (deleted)", ""));
	assert_non_null(hp_policy_excluded(&pol, "/srv/other (deleted)", ""));
	hp_policy_release(&pol);
	/* Rules by unit alone: the path is not needed. */
	assert_hp_ok(load_text(&pol, "[exclude]\nunit = sshd.service\n"));
	assert_null(hp_policy_excluded(&pol, NULL, "cron.service"));
	assert_non_null(hp_policy_excluded(&pol, NULL, "sshd.service"));
	hp_policy_release(&pol);
}

/* @link, a symbolic link in dir to its new directory @target; @real: dir
 * with its links resolved. */
static void linked_dir(const char *target, const char *link, char *real)
{
	char path[PATH_MAX + 16];

	snprintf(path, sizeof(path), "%s/%s", dir, target);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/%s", dir, link);
	assert_int_equal(symlink(target, path), 0);
	assert_non_null(realpath(dir, real));
}

/*
 * A rule naming a program through a symbolic link (/sbin/sshd where /sbin
 * is /usr/sbin, usr-merged; /usr/bin/python3, a link to python3.11)
 * matches it as /proc/PID/exe names it, the link resolved: an exclusion
 * written so holds.
 */
static void test_policy_exe_symlink(void **state)
{
	char real[PATH_MAX], path[PATH_MAX + 16], prog[PATH_MAX + 16];
	char text[3 * PATH_MAX];
	struct hp_policy pol;

	(void)state;
	linked_dir("sym-real", "sym-link", real);
	snprintf(prog, sizeof(prog), "%s/sym-real/prog", real);
	close(open(prog, O_CREAT | O_WRONLY | O_CLOEXEC, 0755));
	snprintf(path, sizeof(path), "%s/sym-real/alias", dir);
	assert_int_equal(symlink("prog", path), 0);
	snprintf(text, sizeof(text),
		 "[exclude]\nexe = %s/sym-link/prog\nexe = %s/sym-real/alias\n"
		 "[fallback]\nexe %s/sym-link/* = none\n",
		 dir, dir, dir);
	assert_hp_ok(load_text(&pol, text));
	assert_ptr_equal(hp_policy_excluded(&pol, prog, ""), &pol.rules[0]);
	assert_ptr_equal(hp_policy_fallback(&pol, prog, ""), &pol.rules[2]);
	pol.rules[0].kind = HP_RULE_INCLUDE; /* the link to the file */
	assert_ptr_equal(hp_policy_excluded(&pol, prog, ""), &pol.rules[1]);
	assert_null(hp_policy_fallback(&pol, "/usr/bin/other", ""));
	hp_policy_release(&pol);
}

/*
 * A rule through a linked directory, naming a program or a directory not
 * there yet when the policy is read (installed later): the link, there
 * then, is resolved all the same, and the exclusion holds once the
 * program runs.
 */
static void test_policy_exe_symlink_later(void **state)
{
	char real[PATH_MAX], prog[PATH_MAX + 32], text[3 * PATH_MAX];
	struct hp_policy pol;

	(void)state;
	linked_dir("later-real", "later-link", real);
	snprintf(text, sizeof(text),
		 "[exclude]\nexe = %s/later-link/prog\n"
		 "exe = %s/later-link/app/bin/*\n",
		 dir, dir);
	assert_hp_ok(load_text(&pol, text));
	snprintf(prog, sizeof(prog), "%s/later-real/prog", real);
	assert_ptr_equal(hp_policy_excluded(&pol, prog, ""), &pol.rules[0]);
	snprintf(prog, sizeof(prog), "%s/later-real/app/bin/server", real);
	assert_ptr_equal(hp_policy_excluded(&pol, prog, ""), &pol.rules[1]);
	snprintf(prog, sizeof(prog), "%s/later-real/other", real);
	assert_null(hp_policy_excluded(&pol, prog, ""));
	hp_policy_release(&pol);
}

static void test_policy_window(void **state)
{
	struct hp_policy pol;
	struct tm tm = {
		.tm_year = 126, .tm_mon = 0, .tm_mday = 5, .tm_isdst = -1
	};

	(void)state;
	assert_hp_ok(load_text(&pol, "[apply]\nwindow = 22:00-02:00\n"));
	tm.tm_hour = 23;
	assert_true(hp_policy_in_window(&pol, mktime(&tm)));
	tm.tm_hour = 1;
	assert_true(hp_policy_in_window(&pol, mktime(&tm)));
	tm.tm_hour = 12;
	assert_false(hp_policy_in_window(&pol, mktime(&tm)));
	hp_policy_release(&pol);
}

/*
 * A window whose start is its end holds no minute: refused, the file and
 * line named, with what to write instead; 00:00-24:00, the whole day, is
 * a window (always).
 */
static void test_policy_empty_window(void **state)
{
	static const char *const empty[] = { "02:00-02:00", "24:00-00:00",
					     "00:00-00:00", "24:00-24:00" };
	struct hp_policy pol;
	char want[256];

	(void)state;
	for (size_t i = 0; i < HP_ARRAY_SIZE(empty); i++) {
		char text[128];

		snprintf(text, sizeof(text),
			 "# the policy\n[apply]\nwindow = %s\n", empty[i]);
		hp_test_msgs_begin();
		assert_int_equal(load_text(&pol, text), -EINVAL);
		hp_log_set_sink(NULL, NULL);
		snprintf(want, sizeof(want),
			 "'%s/hpatch.conf': line 3: [apply] window = %s: its "
			 "start is its end",
			 dir, empty[i]);
		if (!strstr(hp_test_msgs, want))
			fail_msg("%s: got '%s'", empty[i], hp_test_msgs);
		assert_non_null(strstr(hp_test_msgs, "remove the window line "
						     "(no window: always)"));
		assert_int_equal(pol.window_start, -1); /* nothing half-read */
	}
	assert_hp_ok(load_text(&pol, "[apply]\nwindow = 00:00-24:00\n"));
	assert_true(hp_policy_in_window(&pol, time(NULL)));
	hp_policy_release(&pol);
	assert_hp_ok(load_text(&pol, "[apply]\nwindow = 24:00-02:00\n"));
	assert_int_equal(pol.window_start, 24 * 60);
	hp_policy_release(&pol);
}

/* [perf]: the maps of exited processes, kept 10 minutes by default, at
 * most 10000 of them; for ever, or any while and number. */
static void test_policy_perf(void **state)
{
	struct hp_policy pol;
	int nr = 0;

	(void)state;
	hp_policy_init(&pol);
	assert_int_equal(pol.perf_keep_ms, 600000);
	assert_int_equal(pol.perf_max_exited, 10000);
	assert_hp_ok(load_text(&pol, "[perf]\nkeep_exited = forever\n"
				     "max_exited = 0\n"));
	assert_int_equal(pol.perf_keep_ms, -1);
	assert_int_equal(pol.perf_max_exited, 0);
	hp_policy_release(&pol);
	assert_hp_ok(load_text(&pol, "[perf]\nkeep_exited = 30s\n"));
	assert_int_equal(pol.perf_keep_ms, 30000);
	hp_policy_release(&pol);
	hp_log_set_sink(quiet, &nr);
	assert_int_equal(load_text(&pol, "[perf]\nkeep_exited = never\n"
					 "max_exited = -1\n"
					 "max_exited = 10k\n"
					 "keep = 1s\n"),
			 -EINVAL);
	hp_log_set_sink(NULL, NULL);
	assert_int_equal(nr, 6); /* 4 lines, a hint, a summary */
}

static void test_policy_errors(void **state)
{
	struct hp_policy pol;
	int nr = 0;

	(void)state;
	hp_log_set_sink(quiet, &nr);
	assert_int_equal(load_text(&pol, "[apply]\n"
					 "automatic = maybe\n"
					 "retry = 1s soon\n"
					 "window = 25:00-26:00\n"
					 "trusted_keys = xyz\n"
					 "colour = blue\n"
					 "[fallback]\n"
					 "exe /x = reboot\n"
					 "pid 1 = restart\n"
					 "[metrics]\n"
					 "textfile = relative.prom\n"),
			 -EINVAL);
	hp_log_set_sink(NULL, NULL);
	/* Each of the 8 bad lines reported, then a hint and a summary. */
	assert_int_equal(nr, 10);
	assert_true(pol.auto_apply); /* the defaults, nothing half-read */
	assert_int_equal(pol.nr_rules, 0);
}

static void test_duration(void **state)
{
	long ms = 0;

	(void)state;
	assert_hp_ok(hp_policy_parse_duration("1.5s", &ms));
	assert_int_equal(ms, 1500);
	assert_hp_ok(hp_policy_parse_duration("10", &ms));
	assert_int_equal(ms, 10000);
	assert_hp_ok(hp_policy_parse_duration("2h", &ms));
	assert_int_equal(ms, 7200000);
	assert_int_equal(hp_policy_parse_duration("-1s", &ms), -EINVAL);
	assert_int_equal(hp_policy_parse_duration("1 week", &ms), -EINVAL);
	assert_int_equal(hp_policy_parse_duration("999h", &ms), -EINVAL);
}

static const struct {
	const char *text, *unit;
	bool host;
} host_units[] = {
	{ "0::/system.slice/nginx.service/sub\n", "nginx.service", true },
	{ "0::/user.slice/user-0.slice/session-3.scope\n", "session-3.scope",
	  true },
	{ "0::/machine.slice/libpod-1.scope/system.slice/sshd.service\n",
	  "sshd.service", false },
	{ "0::/lxc.payload.c1/system.slice/sshd.service\n", "sshd.service",
	  false },
	{ "0::/user.slice/user-1000.slice/user@1000.service/app.slice/"
	  "a.service\n",
	  "a.service", false },
	/* Escaped by systemd (cg_escape): a leading '_', on a name that
	 * starts with one, or with a controller's name and a dot. */
	{ "0::/system.slice/_cpu.service\n", "cpu.service", true },
	{ "0::/_io.slice/__x.service\n", "_x.service", true },
	{ "0::/\n", "", false },
};

static void test_unit_of(void **state)
{
	char unit[64];

	(void)state;
	hp_agent_unit_of("0::/system.slice/nginx.service\n", unit,
			 sizeof(unit));
	assert_string_equal(unit, "nginx.service");
	hp_agent_unit_of("0::/system.slice/docker-1.scope/init.scope\n", unit,
			 sizeof(unit));
	assert_string_equal(unit, "init.scope");
	hp_agent_unit_of("0::/user.slice/user-0.slice/session-3.scope\n", unit,
			 sizeof(unit));
	assert_string_equal(unit, "session-3.scope");
	hp_agent_unit_of("12:cpu:/x\n1:name=systemd:/system.slice/"
			 "cron.service\n0::/\n",
			 unit, sizeof(unit));
	assert_string_equal(unit, "cron.service");
	hp_agent_unit_of("0::/\n", unit, sizeof(unit));
	assert_string_equal(unit, "");
	/* A unit of the host's systemd: only slices above it; not one a
	 * container's manager runs, or a user's. */
	for (size_t i = 0; i < HP_ARRAY_SIZE(host_units); i++) {
		assert_int_equal(hp_agent_unit_of(host_units[i].text, unit,
						  sizeof(unit)),
				 host_units[i].host);
		assert_string_equal(unit, host_units[i].unit);
	}
	hp_agent_unit_of("0::/system.slice/a-very-long-name-that-does-not-fit-"
			 "in-the-buffer-at-all.service\n",
			 unit, 16);
	assert_string_equal(unit, "");
}

/*
 * hpatchd's room for a unit holds any (a cgroup directory's name is at
 * most 255 bytes); a name longer than a caller's room is none, never the
 * unit above it (restarting a user's whole manager, say).
 */
static void test_unit_of_long(void **state)
{
	char unit[sizeof(((struct ag_proc *)0)->unit)], name[256];
	char text[512];

	(void)state;
	memset(name, 'a', 247);
	snprintf(name + 247, sizeof(name) - 247, ".service");
	snprintf(text, sizeof(text),
		 "0::/user.slice/user-1000.slice/user@1000.service/"
		 "app.slice/%s\n",
		 name);
	hp_agent_unit_of(text, unit, sizeof(unit));
	assert_string_equal(unit, name);
	hp_agent_unit_of(text, unit, 128);
	assert_string_equal(unit, "");
}

static void test_start_time(void **state)
{
	const pid_t child = fork();
	struct timespec nap = { 0, 1000000 };

	(void)state;
	assert_true(child >= 0);
	if (child == 0)
		_exit(0);
	assert_true(hp_agent_start_time(getpid()) > 0);
	/* Exited, not reaped: a zombie has no process left to patch. */
	for (int i = 0; i < 1000 && hp_agent_start_time(child); i++)
		nanosleep(&nap, NULL);
	assert_int_equal(hp_agent_start_time(child), 0);
	assert_int_equal(waitpid(child, NULL, 0), child);
	assert_int_equal(hp_agent_start_time(child), 0);
}

static void test_maps_line(void **state)
{
	struct ag_maps_line m;

	(void)state;
	assert_int_equal(
		ag_maps_parse_line(
			"55d0a1200000-55d0a1201000 r-xp 00001000 fd:01 "
			"1311272                    /usr/bin/cat\n",
			&m),
		0);
	assert_true(m.start == 0x55d0a1200000 && m.end == 0x55d0a1201000);
	assert_true(m.offset == 0x1000 && m.ino == 1311272);
	assert_true(m.dev == makedev(0xfd, 0x01));
	assert_true(m.readable && m.exec && !m.shared);
	assert_int_equal(m.path_len, strlen("/usr/bin/cat"));
	assert_memory_equal(m.path, "/usr/bin/cat", m.path_len);
	assert_int_equal(ag_maps_parse_line("7ffd1000-7ffd2000 rw-s 00000000 "
					    "00:00 0\n",
					    &m),
			 0);
	assert_true(m.shared && !m.exec && m.ino == 0 && m.path_len == 0);
	/* No path, the next line right after: not its path. */
	assert_int_equal(ag_maps_parse_line("1000-2000 ---p 00000000 00:00 0\n"
					    "3000-4000 r--p 0 00:00 0 /x\n",
					    &m),
			 0);
	assert_true(m.start == 0x1000 && m.end == 0x2000 && !m.readable);
	assert_int_equal(m.path_len, 0);
	/* The last line, no newline; a path with spaces, kept whole. */
	assert_int_equal(ag_maps_parse_line("a000-b000 r-xp 0000f000 103:7 "
					    "42   /tmp/a b (deleted)",
					    &m),
			 0);
	assert_true(m.offset == 0xf000 && m.dev == makedev(0x103, 7));
	assert_true(m.ino == 42 && m.exec);
	assert_int_equal(m.path_len, strlen("/tmp/a b (deleted)"));
	assert_memory_equal(m.path, "/tmp/a b (deleted)", m.path_len);
	assert_int_equal(ag_maps_parse_line("garbage\n", &m), -EINVAL);
	/* Beyond 64 bits, a sign, a field cut short: not a line. */
	assert_int_equal(ag_maps_parse_line("10000000000000000-2000 r--p 0 "
					    "00:00 0\n",
					    &m),
			 -EINVAL);
	assert_int_equal(ag_maps_parse_line("-1000-2000 r--p 0 00:00 0\n", &m),
			 -EINVAL);
	assert_int_equal(ag_maps_parse_line("1000-2000 r--p 0 00:00\n", &m),
			 -EINVAL);
	assert_int_equal(ag_maps_parse_line("1000-2000 r--\n", &m), -EINVAL);
}

/* This test program's build-id, from its PT_NOTE in memory. */
static int own_id(struct dl_phdr_info *info, size_t size, void *data)
{
	struct hp_module *m = data;

	(void)size;
	for (int i = 0; i < info->dlpi_phnum && !m->build_id_len; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		const uint8_t *p =
			(const uint8_t *)(info->dlpi_addr + ph->p_vaddr);

		if (ph->p_type == PT_NOTE)
			m->build_id_len =
				hp_note_build_id(p, ph->p_filesz, m->build_id,
						 sizeof(m->build_id));
	}
	return 1; /* the first object is the program */
}

/* ag_match finds what hp_rt_match finds, the second time from its cache. */
static void test_match_self(void **state)
{
	struct hp_module mod = { 0 }, other = { 0 };
	struct hp_patch p = { .modules = &mod, .nr_modules = 1 };
	struct hp_patch q = { .modules = &other, .nr_modules = 1 };
	const struct hp_patch *const both[] = { &p, NULL, &q };
	uint32_t mapped[3], want[3];
	size_t hit = 0, want_hit = 0;

	(void)state;
	dl_iterate_phdr(own_id, &mod);
	assert_true(mod.build_id_len > 0);
	other = mod;
	other.build_id[0] ^= 0xff;
	assert_int_equal(hp_rt_match(getpid(), both, 3, want, &want_hit), 0);
	for (int round = 0; round < 2; round++) {
		assert_int_equal(ag_match(getpid(), both, 3, mapped, &hit), 0);
		assert_int_equal(hit, want_hit);
		assert_memory_equal(mapped, want, sizeof(want));
	}
	assert_int_equal(mapped[0], 1);
	assert_int_equal(mapped[2], 0);
	assert_int_equal(ag_match(999999999, both, 3, mapped, &hit),
			 -HP_E_GONE);
	ag_match_reset();
}

/* The build-id of ELF file @path, from its program headers' notes. */
static void file_build_id(const char *path, struct hp_module *m)
{
	FILE *fp = fopen(path, "rb");
	Elf64_Ehdr eh;
	Elf64_Phdr ph;

	assert_non_null(fp);
	assert_int_equal(fread(&eh, sizeof(eh), 1, fp), 1);
	for (int i = 0; i < eh.e_phnum && !m->build_id_len; i++) {
		uint8_t notes[1024];
		size_t len = 0;

		assert_int_equal(fseek(fp, (long)(eh.e_phoff + i * sizeof(ph)),
				       SEEK_SET),
				 0);
		assert_int_equal(fread(&ph, sizeof(ph), 1, fp), 1);
		if (ph.p_type != PT_NOTE)
			continue;
		len = ph.p_filesz < sizeof(notes) ? ph.p_filesz : sizeof(notes);
		assert_int_equal(fseek(fp, (long)ph.p_offset, SEEK_SET), 0);
		assert_int_equal(fread(notes, 1, len, fp), len);
		m->build_id_len = hp_note_build_id(notes, len, m->build_id,
						   sizeof(m->build_id));
	}
	fclose(fp);
	assert_true(m->build_id_len > 0);
}

static pid_t loader; /* killed by kill_loader after a failed test */

static int kill_loader(void **state)
{
	(void)state;
	if (loader > 0) {
		kill(loader, SIGKILL);
		waitpid(loader, NULL, 0);
	}
	loader = 0;
	return 0;
}

/* A process that has dlopen'ed @path as user @uid (-1: this one's),
 * stopped in pause(). */
static pid_t start_loader_as(const char *path, uid_t uid)
{
	int fds[2];
	char c = 0;
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	if (pid == 0) {
		if (uid != (uid_t)-1 &&
		    (setresgid(uid, uid, uid) || setresuid(uid, uid, uid)))
			_exit(1);
		/* (after the change of user, which clears it) */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		c = dlopen(path, RTLD_NOW) ? 1 : 2;
		if (write(fds[1], &c, 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	loader = pid;
	close(fds[1]);
	assert_int_equal(read(fds[0], &c, 1), 1);
	close(fds[0]);
	assert_int_equal(c, 1);
	return pid;
}

static pid_t start_loader(const char *path)
{
	return start_loader_as(path, (uid_t)-1);
}

static void copy_file(const char *from, const char *to, int flags)
{
	char buf[65536];
	const int in = open(from, O_RDONLY);
	const int out = open(to, O_WRONLY | flags, 0755);
	ssize_t n;

	assert_true(in >= 0 && out >= 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	close(in);
	close(out);
}

/*
 * ag_match's cache of each mapped file's build-id follows the file: one
 * rewritten in place (same inode) is read again, one replaced by another
 * at the same path too. Each answer is what hp_rt_match reads from the
 * process's memory.
 */
static void test_match_file_changes(void **state)
{
	const char *td = getenv("HP_TD");
	struct hp_module v1 = { 0 }, v2 = { 0 };
	struct hp_patch p1 = { .modules = &v1, .nr_modules = 1 };
	struct hp_patch p2 = { .modules = &v2, .nr_modules = 1 };
	const struct hp_patch *const both[] = { &p1, &p2 };
	char lib1[256], lib2[256], lib[128], tmp[128];
	/* Which of v1, v2 each process maps, in order. */
	static const uint32_t want[][2] = { { 1, 0 }, { 0, 1 }, { 1, 0 } };

	(void)state;
	assert_non_null(td);
	snprintf(lib1, sizeof(lib1), "%s/libgreet-v1.so", td);
	snprintf(lib2, sizeof(lib2), "%s/libgreet-v2.so", td);
	snprintf(lib, sizeof(lib), "%s/libg.so", dir);
	snprintf(tmp, sizeof(tmp), "%s/libg.so.new", dir);
	file_build_id(lib1, &v1);
	file_build_id(lib2, &v2);
	assert_memory_not_equal(v1.build_id, v2.build_id, v1.build_id_len);
	copy_file(lib1, lib, O_CREAT | O_TRUNC);
	for (size_t round = 0; round < HP_ARRAY_SIZE(want); round++) {
		const pid_t pid = start_loader(lib);
		uint32_t mapped[2], truth[2];
		size_t hit = 0, truth_hit = 0;

		for (int look = 0; look < 2; look++) { /* the 2nd: cached */
			assert_int_equal(ag_match(pid, both, 2, mapped, &hit),
					 0);
			assert_memory_equal(mapped, want[round],
					    sizeof(mapped));
		}
		assert_int_equal(hp_rt_match(pid, both, 2, truth, &truth_hit),
				 0);
		assert_memory_equal(mapped, truth, sizeof(truth));
		kill_loader(NULL);
		if (round == 0) /* in place: the same inode */
			copy_file(lib2, lib, O_TRUNC);
		if (round == 1) { /* another file at the path */
			copy_file(lib1, tmp, O_CREAT | O_TRUNC);
			assert_int_equal(rename(tmp, lib), 0);
		}
	}
	ag_match_reset();
}

/* Map open ELF file @fd's PT_LOADs as ld.so does, from @fd. */
static bool map_like_ldso(int fd)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph[16];
	uint8_t *base = NULL;

	if (pread(fd, &eh, sizeof(eh), 0) != sizeof(eh) ||
	    eh.e_phnum > HP_ARRAY_SIZE(ph) ||
	    pread(fd, ph, eh.e_phnum * sizeof(ph[0]), (off_t)eh.e_phoff) <= 0)
		return false;
	base = mmap(NULL, 16 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		    0);
	if (base == MAP_FAILED)
		return false;
	for (int i = 0; i < eh.e_phnum; i++) {
		const uint64_t va = ph[i].p_vaddr & ~4095ULL;
		const int prot = (ph[i].p_flags & PF_R ? PROT_READ : 0) |
				 (ph[i].p_flags & PF_X ? PROT_EXEC : 0);

		if (ph[i].p_type == PT_LOAD &&
		    mmap(base + va, ph[i].p_vaddr + ph[i].p_filesz - va, prot,
			 MAP_PRIVATE | MAP_FIXED, fd,
			 (off_t)(ph[i].p_offset & ~4095ULL)) == MAP_FAILED)
			return false;
	}
	return true;
}

/*
 * A process that maps @path and holds a write lease on it (as any user
 * may on a file of his): the lease and the mapping share one open, the
 * only way both can be had. A byte written to @ctl[1] lets go of the
 * lease; 'y' is read from @ctl[0] once it holds it, and once it let go.
 */
static pid_t start_leased_loader(const char *path, int ctl[2])
{
	int up[2], down[2];
	char c = 0;
	pid_t pid;

	assert_int_equal(pipe(up), 0);
	assert_int_equal(pipe(down), 0);
	pid = fork();
	if (pid == 0) {
		const int fd = open(path, O_RDWR);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		signal(SIGIO, SIG_IGN); /* told of a break: keeps it */
		c = fd >= 0 && map_like_ldso(fd) &&
				    !fcntl(fd, F_SETLEASE, F_WRLCK)
			    ? 'y'
			    : 'n';
		if (write(up[1], &c, 1) != 1 || read(down[0], &c, 1) != 1)
			_exit(1);
		c = fcntl(fd, F_SETLEASE, F_UNLCK) ? 'n' : 'y';
		if (write(up[1], &c, 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	loader = pid;
	close(up[1]);
	close(down[0]);
	ctl[0] = up[0];
	ctl[1] = down[1];
	assert_int_equal(read(ctl[0], &c, 1), 1);
	assert_int_equal(c, 'y');
	return pid;
}

/* A patch whose one module is libgreet-v1.so's build, and a copy of the
 * library at lib, in the test's directory, for a loader to map. */
struct greet_copy {
	struct hp_module v1;
	struct hp_patch p1;
	const struct hp_patch *pp[1];
	char lib[128];
};

static void greet_copy_init(struct greet_copy *g, const char *name)
{
	const char *td = getenv("HP_TD");
	char lib1[256];

	assert_non_null(td);
	*g = (struct greet_copy){ .p1 = { .modules = &g->v1,
					  .nr_modules = 1 } };
	g->pp[0] = &g->p1;
	snprintf(lib1, sizeof(lib1), "%s/libgreet-v1.so", td);
	snprintf(g->lib, sizeof(g->lib), "%s/%s", dir, name);
	file_build_id(lib1, &g->v1);
	copy_file(lib1, g->lib, O_CREAT | O_TRUNC);
	ag_match_reset();
}

/* @pid's look by ag_match says what its memory says, or -EAGAIN: ask
 * the memory. Return: ag_match's result. */
static int match_agrees(pid_t pid, const struct hp_patch *const *pp,
			uint32_t truth)
{
	uint32_t mapped = 0, mem = 0;
	size_t hit = 0;
	const int rc = ag_match(pid, pp, 1, &mapped, &hit);

	assert_int_equal(hp_rt_match(pid, pp, 1, &mem, &hit), 0);
	assert_int_equal(mem, truth);
	if (rc != -EAGAIN) {
		assert_int_equal(rc, 0);
		assert_int_equal(mapped, truth);
	}
	return rc;
}

/*
 * A mapped file ag_match cannot open while someone holds a write lease
 * on it (hp_open_regular opens with O_NONBLOCK: EWOULDBLOCK) says nothing
 * of the file: not taken for one of no patch, nor cached as such: once
 * the lease is gone the file is read.
 */
static void test_match_leased(void **state)
{
	struct greet_copy g;
	int ctl[2];
	char c = 0;
	pid_t pid;

	(void)state;
	greet_copy_init(&g, "libleased.so");
	pid = start_leased_loader(g.lib, ctl);
	assert_int_equal(match_agrees(pid, g.pp, 1), -EAGAIN);
	assert_int_equal(write(ctl[1], "x", 1), 1); /* the lease ends */
	assert_int_equal(read(ctl[0], &c, 1), 1);
	assert_int_equal(c, 'y');
	assert_int_equal(match_agrees(pid, g.pp, 1), 0); /* read: mapped=1 */
	close(ctl[0]);
	close(ctl[1]);
	kill_loader(NULL);
	ag_match_reset();
}

/* The limit of open files that leaves @room fd numbers free below it. */
static rlim_t fd_limit_for(int room)
{
	for (int fd = 0, nr_free = 0; fd < 65536; fd++)
		if (fcntl(fd, F_GETFD) < 0 && errno == EBADF &&
		    ++nr_free > room)
			return (rlim_t)fd;
	return 65536;
}

/* ag_match(@pid) with @room fd numbers free. */
static int match_with_fds(pid_t pid, const struct hp_patch *const *pp, int room,
			  uint32_t *mapped)
{
	struct rlimit old, low;
	size_t hit = 0;
	int rc;

	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = fd_limit_for(room);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	rc = ag_match(pid, pp, 1, mapped, &hit);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	return rc;
}

/*
 * A look at the limit of open files (a storm of them) tells nothing of
 * the files or the process: with no fd for its maps the process is not
 * "gone"; with none for a mapped file the file is not one of no patch,
 * and not cached as such: the next look with fds to spare reads it.
 */
static void test_match_fd_limit(void **state)
{
	struct greet_copy g;
	uint32_t mapped = 0;
	int rc;
	pid_t pid;

	(void)state;
	greet_copy_init(&g, "libfds.so");
	pid = start_loader(g.lib);
	/* No fd for /proc/PID/maps: the memory is asked, it is not gone. */
	assert_int_equal(match_with_fds(pid, g.pp, 0, &mapped), -EAGAIN);
	/* One: the maps, the O_PATH open of the library, not its reopen
	 * (every other file it maps is this process's, cached first). */
	assert_int_equal(ag_match(getpid(), g.pp, 1, &mapped, &(size_t){ 0 }),
			 0);
	rc = match_with_fds(pid, g.pp, 1, &mapped);
	if (rc != -EAGAIN) {
		assert_int_equal(rc, 0);
		assert_int_equal(mapped, 1);
	}
	assert_int_equal(match_agrees(pid, g.pp, 1), 0); /* read now */
	kill_loader(NULL);
	ag_match_reset();
}

/* Take CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH out of the effective set
 * (@on: back in), as hpatchd's unit runs: it has neither. */
static int dac_caps(bool on)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3
	};
	struct __user_cap_data_struct d[2];
	const uint32_t dac = 1u << CAP_DAC_OVERRIDE | 1u << CAP_DAC_READ_SEARCH;

	if (syscall(SYS_capget, &h, d))
		return -errno;
	d[0].effective = on ? d[0].effective | dac : d[0].effective & ~dac;
	return syscall(SYS_capset, &h, d) ? -errno : 0;
}

/* The looks of test_match_unreadable, in a child that may drop its
 * capabilities. Return: 0, or the line that failed. */
static int unreadable_looks(pid_t pid, const struct hp_patch *const *pp,
			    const char *lib)
{
	uint32_t mapped = 0, mem = 0;
	size_t hit = 0;

	if (dac_caps(false))
		return __LINE__;
	if (hp_rt_match(pid, pp, 1, &mem, &hit) || mem != 1)
		return __LINE__; /* its memory says: mapped */
	if (ag_match(pid, pp, 1, &mapped, &hit) != -EAGAIN)
		return __LINE__;
	/* Kept as "ask the memory": not opened again while it is the same
	 * file, whether it could be now or not. */
	if (dac_caps(true) || ag_match(pid, pp, 1, &mapped, &hit) != -EAGAIN)
		return __LINE__;
	/* Its mode changed (its ctime): read again. */
	if (dac_caps(false) || chmod(lib, 0755))
		return __LINE__;
	if (ag_match(pid, pp, 1, &mapped, &hit) || mapped != 1)
		return __LINE__;
	return 0;
}

/*
 * A mapped file hpatchd may not read (0700, another user's, where it runs
 * without CAP_DAC_OVERRIDE) is not one of no patch: the process's memory is
 * asked (CAP_SYS_PTRACE reaches it), and the file is kept as such until
 * it changes, not opened in vain at each look.
 */
static void test_match_unreadable(void **state)
{
	struct greet_copy g;
	int status = 0;
	pid_t pid, looker;

	(void)state;
	assert_int_equal(geteuid(), 0); /* to own a file by another uid */
	greet_copy_init(&g, "libapp.so");
	assert_int_equal(chown(g.lib, 65534, 65534), 0);
	assert_int_equal(chmod(g.lib, 0700), 0);
	assert_int_equal(chmod(dir, 0711), 0);
	pid = start_loader_as(g.lib, 65534);
	looker = fork();
	assert_true(looker >= 0);
	if (looker == 0) {
		const int line = unreadable_looks(pid, g.pp, g.lib);

		if (line)
			fprintf(stderr, "unreadable_looks: line %d\n", line);
		_exit(line ? 1 : 0);
	}
	assert_int_equal(waitpid(looker, &status, 0), looker);
	assert_int_equal(chmod(dir, 0700), 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	kill_loader(NULL);
	ag_match_reset();
}

static void test_view_roundtrip(void **state)
{
	struct hp_track tracks[] = {
		{ .pid = 42,
		  .patch_id = "CVE-1",
		  .state = HP_TRACK_BUSY,
		  .tries = 3,
		  .reason = "hold in use by thread 43" },
		{ .pid = 7,
		  .patch_id = "CVE-2",
		  .state = HP_TRACK_GAVE_UP,
		  .fallback_result = HP_FALLBACK_FAILED,
		  .fallback = "command exited with status 3",
		  .reason = "x\ny" },
		{ .pid = 8, .patch_id = "CVE-2", .state = HP_TRACK_APPLIED },
	};
	const struct hp_view v = { .daemon_pid = getpid(),
				   .started = 100,
				   .applied = 5,
				   .fallbacks = 1,
				   .fallbacks_failed = 1,
				   .last_pause_us = 77,
				   .tracks = tracks,
				   .nr_tracks = 3 };
	struct hp_view r;
	char path[128];

	(void)state;
	snprintf(path, sizeof(path), "%s/view", dir);
	assert_hp_ok(hp_view_write(&v, path));
	/* This test's process is not hpatchd: read, but "not running". */
	assert_int_equal(hp_view_read(&r, path), -ESRCH);
	assert_int_equal(r.daemon_pid, getpid());
	assert_int_equal(r.applied, 5);
	assert_int_equal(r.fallbacks, 1);
	assert_int_equal(r.last_pause_us, 77);
	assert_int_equal(r.nr_tracks, 3);
	assert_int_equal(r.tracks[0].state, HP_TRACK_BUSY);
	assert_int_equal(r.tracks[0].tries, 3);
	assert_string_equal(r.tracks[0].reason, "hold in use by thread 43");
	assert_int_equal(r.fallbacks_failed, 1);
	assert_int_equal(r.tracks[1].fallback_result, HP_FALLBACK_FAILED);
	assert_string_equal(r.tracks[1].fallback,
			    "command exited with status 3");
	assert_string_equal(r.tracks[1].reason, "x"); /* one line only */
	assert_string_equal(r.tracks[2].patch_id, "CVE-2");
	assert_string_equal(r.tracks[2].reason, "");
	assert_int_equal(r.tracks[2].fallback_result, HP_FALLBACK_NONE);
	assert_string_equal(r.tracks[2].fallback, "");
	hp_view_release(&r);
}

/* An older hpatchd's view (its "1": a fallback done, no outcome) reads
 * as a fallback run whose outcome is not known. */
static void test_view_older(void **state)
{
	char path[128];
	struct hp_view r;
	FILE *fp = NULL;

	(void)state;
	snprintf(path, sizeof(path), "%s/view.old", dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp,
		"hpatchd-view 1\ndaemon_pid %d\nfallbacks 1\n"
		"track 7 gave-up 3 1 CVE-2 hold in use; fallback already "
		"run\ntrack 8 busy 1 0 CVE-2 hold in use\n",
		(int)getpid());
	fclose(fp);
	assert_int_equal(hp_view_read(&r, path), -ESRCH);
	assert_int_equal(r.nr_tracks, 2);
	assert_int_equal(r.tracks[0].fallback_result, HP_FALLBACK_UNKNOWN);
	assert_int_equal(r.tracks[1].fallback_result, HP_FALLBACK_NONE);
	assert_int_equal(r.fallbacks_failed, 0);
	hp_view_release(&r);
}

/*
 * The record of fallbacks run keeps what each did, and still reads an
 * older hpatchd's lines (no outcome: run, outcome unknown); a command
 * that was running when the hpatchd that wrote it stopped is no longer
 * said running. Lines of processes gone are dropped.
 */
static void test_fallbacks_record(void **state)
{
	const uint64_t start = hp_agent_start_time(getpid());
	struct ag_daemon d = { 0 };
	char text[1024] = "";
	FILE *fp = NULL;

	(void)state;
	snprintf(d.fallbacks_path, sizeof(d.fallbacks_path), "%s/fallbacks",
		 dir);
	fp = fopen(d.fallbacks_path, "w");
	assert_non_null(fp);
	fprintf(fp,
		"%d %" PRIu64 " old\n"
		"%d %" PRIu64 " bad failed command exited with status 3\n"
		"%d %" PRIu64 " ok succeeded restart of 'a.service' queued\n"
		"%d %" PRIu64 " run running command started, still running\n"
		"4194000 12345 gone failed command killed by signal 9\n",
		(int)getpid(), start, (int)getpid(), start, (int)getpid(),
		start, (int)getpid(), start);
	fclose(fp);
	ag_load_fallbacks(&d);
	assert_int_equal(d.nr_done, 4);
	assert_string_equal(d.done[0].patch_id, "old");
	assert_int_equal(d.done[0].result, HP_FALLBACK_UNKNOWN);
	assert_string_equal(d.done[0].what, "run by an earlier hpatchd: its "
					    "outcome not recorded");
	assert_int_equal(d.done[1].result, HP_FALLBACK_FAILED);
	assert_string_equal(d.done[1].what, "command exited with status 3");
	assert_int_equal(d.done[2].result, HP_FALLBACK_OK);
	assert_string_equal(d.done[2].what, "restart of 'a.service' queued");
	assert_int_equal(d.done[3].result, HP_FALLBACK_UNKNOWN);
	assert_string_equal(d.done[3].what, "started, its end not seen: "
					    "hpatchd stopped meanwhile");
	/* Rewritten: the process gone left, each outcome written. */
	fp = fopen(d.fallbacks_path, "r");
	assert_non_null(fp);
	assert_true(fread(text, 1, sizeof(text) - 1, fp) > 0);
	fclose(fp);
	assert_null(strstr(text, "4194000"));
	assert_non_null(strstr(text, " old unknown run by an earlier"));
	assert_non_null(strstr(text, " bad failed command exited with "
				     "status 3\n"));
	/* ... and read back the same. */
	free(d.done);
	d.done = NULL;
	d.nr_done = 0;
	ag_load_fallbacks(&d);
	assert_int_equal(d.nr_done, 4);
	assert_int_equal(d.done[0].result, HP_FALLBACK_UNKNOWN);
	assert_int_equal(d.done[1].result, HP_FALLBACK_FAILED);
	assert_string_equal(d.done[1].what, "command exited with status 3");
	assert_string_equal(d.done[3].what, "started, its end not seen: "
					    "hpatchd stopped meanwhile");
	free(d.done);
}

/* ---- sharers from the process events ---- */

static int share_and_wait(void *arg)
{
	(void)arg;
	syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL); /* not left behind */
	for (;;)
		syscall(SYS_pause);
	return 0;
}

/* A clone(CLONE_VM) child whose leader thread leaves, a thread of its
 * own running on in the memory it shares. */
static int leave_a_thread(void *arg)
{
	clone(share_and_wait, (char *)arg + (64 << 10),
	      CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD,
	      NULL);
	syscall(SYS_exit, 0);
	return 0;
}

/*
 * The target of test_sharers_from_events, run as this program with
 * --sharers-helper: told on stdin, it makes a child (f: fork, v:
 * clone(CLONE_VM), l: clone(CLONE_VM) whose leader leaves) and prints
 * its pid; r prints its own.
 */
static int sharers_helper(void)
{
	char *stacks = malloc(3 << 16), c = 0;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGCHLD, SIG_IGN); /* reaped by the kernel */
	while (stacks && read(0, &c, 1) == 1) {
		pid_t pid = getpid();

		if (c == 'f' && !(pid = fork())) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			for (;;)
				pause();
		}
		if (c == 'v')
			pid = clone(share_and_wait, stacks + (1 << 16),
				    CLONE_VM | SIGCHLD, NULL);
		if (c == 'l') {
			pid = clone(leave_a_thread, stacks + (2 << 16),
				    CLONE_VM | SIGCHLD, stacks + (2 << 16));
			while (pid > 0 && !hp_task_gone(pid))
				usleep(1000); /* until its leader has left */
		}
		dprintf(1, "%d\n", (int)pid);
	}
	return 0;
}

/* Send @cmd to the helper, return the pid it answers. */
static pid_t ask_helper(const int *io, char cmd)
{
	char line[32] = "";
	size_t n = 0;

	assert_int_equal(write(io[1], &cmd, 1), 1);
	while (n < sizeof(line) - 1 && read(io[0], line + n, 1) == 1 &&
	       line[n] != '\n')
		n++;
	return (pid_t)atoi(line);
}

/* As hpatch's apply checks @pid (every message in hp_test_msgs). */
static int check_alone(pid_t pid, struct hp_rt_sharers *s)
{
	int rc;

	hp_test_msgs_begin();
	rc = hp_proc_check_alone(pid, s);
	hp_log_set_sink(NULL, NULL);
	return rc;
}

static void until_gone(pid_t pid)
{
	for (int i = 0; i < 2000 && !kill(pid, 0); i++)
		usleep(1000);
}

/*
 * hpatchd asks only the processes created since a target's exec, as the
 * kernel's events told it, whether they share its memory; and reads the
 * events still queued at the check, so a clone(CLONE_VM) child created
 * just before it (its event read by no one yet) is found. A forked copy
 * is no sharer; a sharer whose leader has left is found through a
 * thread of its own; a process whose exec it did not see is asked of
 * the host.
 */
static void test_sharers_from_events(void **state)
{
	struct ag_events ev;
	struct hp_rt_sharers *s = NULL;
	int to[2], from[2], io[2];
	pid_t helper = 0, kids[3] = { 0 };
	char want[64];

	(void)state;
	assert_hp_ok(ag_events_open(&ev));
	assert_hp_ok(hp_rt_sharers_follow(&s, &ev.births));
	assert_int_equal(pipe(to), 0);
	assert_int_equal(pipe(from), 0);
	helper = fork();
	if (helper == 0) {
		dup2(to[0], 0);
		dup2(from[1], 1);
		execl("/proc/self/exe", "test_agent", "--sharers-helper",
		      (char *)NULL);
		_exit(127);
	}
	close(to[0]);
	close(from[1]);
	io[0] = from[0];
	io[1] = to[1];
	assert_int_equal(ask_helper(io, 'r'), helper);
	ag_events_drain(&ev, 0); /* its exec: known from now on */
	assert_hp_ok(check_alone(helper, s));
	kids[0] = ask_helper(io, 'f');
	assert_true(kids[0] > 0);
	assert_hp_ok(check_alone(helper, s));
	kids[1] = ask_helper(io, 'v');
	assert_true(kids[1] > 0);
	assert_hp_err(check_alone(helper, s), HP_E_BUSY);
	snprintf(want, sizeof(want), "shares its memory with pid %d ",
		 (int)kids[1]);
	assert_non_null(strstr(hp_test_msgs, want));
	kill(kids[1], SIGKILL);
	until_gone(kids[1]);
	assert_hp_ok(check_alone(helper, s));
	kids[2] = ask_helper(io, 'l');
	assert_true(kids[2] > 0);
	assert_hp_err(check_alone(helper, s), HP_E_BUSY);
	snprintf(want, sizeof(want), "shares its memory with pid %d ",
		 (int)kids[2]);
	assert_non_null(strstr(hp_test_msgs, want));
	/* Our own exec was before the events were followed. */
	assert_int_equal(ev.births.since_exec(ev.births.arg, getpid(),
					      &(pid_t *){ NULL },
					      &(size_t){ 0 }),
			 1);
	assert_hp_ok(check_alone(getpid(), s));
	for (size_t i = 0; i < HP_ARRAY_SIZE(kids); i++)
		kill(kids[i], SIGKILL);
	kill(helper, SIGKILL);
	waitpid(helper, NULL, 0);
	close(io[0]);
	close(io[1]);
	hp_rt_sharers_free(s);
	ag_events_close(&ev);
}

/*
 * Is @pid asleep in sleep(1)'s nanosleep? Then its exec is over, and its
 * exec event queued: the kernel sets the new comm early in the exec, and
 * sends the event only once the new image is loaded.
 */
static bool in_nanosleep(pid_t pid)
{
	char path[64], line[64] = "";
	FILE *f = NULL;
	long nr = -1;

	snprintf(path, sizeof(path), "/proc/%d/syscall", (int)pid);
	f = fopen(path, "r");
	if (f && fgets(line, sizeof(line), f))
		nr = strtol(line, NULL, 10);
	if (f)
		fclose(f);
	return nr == SYS_nanosleep || nr == SYS_clock_nanosleep;
}

static pid_t sleeps[4]; /* killed by kill_sleeps after a failed test */

static int kill_sleeps(void **state)
{
	(void)state;
	for (size_t i = 0; i < HP_ARRAY_SIZE(sleeps); i++)
		if (sleeps[i] > 0) {
			kill(sleeps[i], SIGKILL);
			waitpid(sleeps[i], NULL, 0);
			sleeps[i] = 0;
		}
	return 0;
}

/* A child in sleep(1), its exec over. */
static pid_t start_sleep(void)
{
	const pid_t pid = fork();
	size_t i = 0;

	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execl("/bin/sleep", "sleep", "30", (char *)NULL);
		_exit(127);
	}
	while (i < HP_ARRAY_SIZE(sleeps) && sleeps[i] > 0)
		i++;
	assert_true(i < HP_ARRAY_SIZE(sleeps));
	sleeps[i] = pid;
	for (int n = 0; n < 10000 && !in_nanosleep(pid); n++)
		usleep(1000);
	assert_true(in_nanosleep(pid));
	return pid;
}

static int since_exec(struct ag_events *ev, pid_t pid)
{
	pid_t *pids = NULL;
	size_t nr = 0;
	const int rc = ev->births.since_exec(ev, pid, &pids, &nr);

	free(pids);
	return rc;
}

/*
 * Events lost (the socket's queue overflowed): who was created when is
 * no longer known, and every target's sharers are asked of the host,
 * until a target exec'd since; the loop is told to rescan.
 */
static void test_events_lost(void **state)
{
	struct ag_events ev;
	const int small = 1, big = 4 << 20;
	pid_t before = 0, after = 0;

	(void)state;
	assert_hp_ok(ag_events_open(&ev));
	before = start_sleep();
	assert_int_equal(since_exec(&ev, before), 0);
	assert_false(ev.lost);
	/* The smallest queue, overflowed by 200 processes' events. */
	assert_int_equal(
		setsockopt(ev.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)),
		0);
	for (int i = 0; i < 200; i++) {
		const pid_t pid = fork();

		if (pid == 0)
			_exit(0);
		waitpid(pid, NULL, 0);
	}
	assert_int_equal(since_exec(&ev, before), 1);
	assert_true(ev.lost);
	assert_int_equal(setsockopt(ev.fd, SOL_SOCKET, SO_RCVBUFFORCE, &big,
				    sizeof(big)),
			 0);
	after = start_sleep();
	assert_int_equal(since_exec(&ev, after), 0);
	assert_int_equal(since_exec(&ev, before), 1);
	ag_events_close(&ev);
}

/*
 * A process created without an exec, then exited, whole: forgotten at
 * its exit event (only one whose threads outlive its leader waits for a
 * scan of the host), so the table stays as large as the host's processes.
 */
static void test_events_forget_exits(void **state)
{
	struct ag_events ev;
	pid_t target = 0, kids[20] = { 0 }, *born = NULL;
	size_t nr = 0;

	(void)state;
	assert_hp_ok(ag_events_open(&ev));
	target = start_sleep();
	for (size_t i = 0; i < HP_ARRAY_SIZE(kids); i++) {
		kids[i] = fork();
		if (kids[i] == 0)
			_exit(0);
		waitpid(kids[i], NULL, 0);
	}
	assert_int_equal(ev.births.since_exec(&ev, target, &born, &nr), 0);
	for (size_t i = 0; i < nr; i++)
		for (size_t j = 0; j < HP_ARRAY_SIZE(kids); j++)
			assert_int_not_equal(born[i], kids[j]);
	free(born);
	ag_events_close(&ev);
}

static void *sleep_forever(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

/* The leader of forked @pid exited (a zombie while its thread runs)? */
static bool leader_exited(pid_t pid)
{
	char path[64], line[128];
	bool z = false;
	FILE *f = NULL;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		z |= !strncmp(line, "State:\tZ", 8);
	if (f)
		fclose(f);
	return z;
}

/* A child whose main thread has exited (pthread_exit), a thread of it
 * sleeping on: its pid. */
static pid_t leader_exited_child(void)
{
	pthread_t th;
	pid_t pid = fork();

	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (pthread_create(&th, NULL, sleep_forever, NULL))
			_exit(1);
		pthread_exit(NULL);
	}
	assert_true(pid > 0);
	for (int i = 0; i < 2000 && !leader_exited(pid); i++)
		usleep(1000);
	assert_true(leader_exited(pid));
	return pid;
}

/*
 * The exit event of a leader whose process lives on (pthread_exit in
 * main, a thread still running) keeps the process known, to be looked at
 * again shortly; the exit of the whole process forgets it.
 */
static void test_leader_exit_keeps_process(void **state)
{
	struct ag_daemon d = { .nr_wanted = 1 };
	struct ag_proc *pr = NULL;
	pid_t pid = 0;

	(void)state;
	pid = leader_exited_child();
	assert_false(hp_proc_gone_whole(pid));
	assert_non_null(ag_add_proc(&d, pid));
	ag_on_exit(&d, pid);
	pr = ag_find_proc(&d, pid);
	assert_non_null(pr);
	assert_true(pr->exit_seen);
	assert_true(pr->due_us > 0);
	/* Killed, not reaped: a zombie leader alone, gone whole. */
	kill(pid, SIGKILL);
	for (int i = 0; i < 2000 && !hp_proc_gone_whole(pid); i++)
		usleep(1000);
	assert_true(leader_exited(pid));
	assert_true(hp_proc_gone_whole(pid));
	ag_on_exit(&d, pid);
	assert_null(ag_find_proc(&d, pid));
	waitpid(pid, NULL, 0);
	assert_true(hp_proc_gone_whole(pid));
	assert_false(hp_proc_gone_whole(getpid()));
	free(d.procs);
}

/* In its exit now: PF_EXITING (its memory let go), not a zombie yet? And
 * *@over once it is one (or gone). */
static bool leader_in_exit(pid_t pid, bool *over)
{
	char path[64], buf[512] = "";
	unsigned long long flags = 0;
	const char *p = NULL;
	FILE *f = NULL;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f) {
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = 0;
		fclose(f);
	}
	p = strrchr(buf, ')');
	*over = !p || p[2] == 'Z' || p[2] == 'X';
	return !*over && hp_stat_field(buf, 9, &flags) && (flags & 0x4);
}

/* A child whose main thread leaves (pthread_exit) slowly: it closes a
 * file table of its own, thousands of sockets, while a thread of it
 * sleeps on. Return: its pid, once its leader is in that exit; *@seen
 * false if the exit was over before it was seen. */
static pid_t leader_exiting_child(bool *seen)
{
	struct rlimit rl;
	pthread_t th;
	int go[2], fd, last = -1;
	char c = 0;
	pid_t pid;
	bool over = false;

	assert_int_equal(pipe(go), 0);
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (!getrlimit(RLIMIT_NOFILE, &rl)) {
			rl.rlim_cur = rl.rlim_max < 20000 ? rl.rlim_max : 20000;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
		if (pthread_create(&th, NULL, sleep_forever, NULL) ||
		    unshare(CLONE_FILES))
			_exit(1);
		while ((fd = socket(AF_INET, SOCK_DGRAM, 0)) >= 0)
			last = fd;
		/* Room for pthread_exit's dlopen of libgcc_s. */
		for (int i = 0; i < 16 && last > i; i++)
			close(last - i);
		if (read(go[0], &c, 1) != 1)
			_exit(1);
		pthread_exit(NULL);
	}
	assert_true(pid > 0);
	close(go[0]);
	/* Its sockets opened: it waits for go in read. */
	for (int i = 0; i < 5000 && hp_task_syscall_nr(pid, pid) != SYS_read;
	     i++)
		usleep(1000);
	assert_int_equal(write(go[1], "g", 1), 1);
	close(go[1]);
	while (!leader_in_exit(pid, &over) && !over)
		;
	*seen = !over;
	return pid;
}

/*
 * A leader leaving by pthread_exit lets go of its memory well before it
 * is a zombie: for as long as closing its files takes (thousands of them
 * here: milliseconds) its maps are empty, its exe unreadable, and its
 * state still R or D. Its process lives on in its other threads, and is
 * read through one of them: were the leader taken for the live thread
 * then, the process would pass for gone (hpatchd forgot one so, a
 * process of its to patch, until its next full scan).
 */
static void test_leader_in_exit(void **state)
{
	bool seen = false;
	pid_t pid, tid;
	char *exe = NULL;

	(void)state;
	for (int tries = 0; tries < 5 && !seen; tries++) {
		pid = leader_exiting_child(&seen);
		/* (Not seen in its exit, at a slow moment here: again.) */
		if (seen) {
			tid = hp_proc_live_tid(pid);
			exe = hp_agent_exe(pid);
			assert_int_not_equal(tid, pid);
			assert_true(tid > 0);
			assert_false(hp_proc_gone(pid));
			assert_non_null(exe);
			free(exe);
		}
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	assert_true(seen);
}

/*
 * An image whose exec was seen (fresh) is known by its exit event to be
 * gone before its pid is another's. Once its leader has exited while its
 * threads live on, the exit of the last one comes with no event (only a
 * leader's exit is heard): the image is told by its start time from then
 * on, or its pid, reused, would pass for it (its executable, its tracks).
 */
static void test_leader_exit_start_time(void **state)
{
	struct ag_daemon d = { .nr_wanted = 1 };
	struct ag_proc *pr = NULL;
	pid_t pid = leader_exited_child();

	(void)state;
	pr = ag_add_proc(&d, pid);
	assert_non_null(pr);
	pr->fresh = pr->exe_read = true;
	ag_on_exit(&d, pid);
	pr = ag_find_proc(&d, pid);
	assert_non_null(pr);
	assert_false(pr->fresh);
	assert_int_equal(pr->start_time, hp_agent_start_time(pid));
	assert_true(pr->start_time > 0);
	/* Its executable not read yet: both are, at the next look. */
	pr->fresh = true;
	pr->exe_read = false;
	ag_on_exit(&d, pid);
	assert_false(pr->fresh);
	assert_int_equal(pr->start_time, 0);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	free(d.procs);
}

/*
 * The query of what a live process has applied fails (its memory cannot
 * be read now: here kthreadd's, which has none): it is looked at again on
 * the retry schedule, not left until the next full scan.
 */
static void test_query_failed_looks_again(void **state)
{
	struct ag_daemon d = { .nr_wanted = 1 };
	struct ag_proc *pr = NULL;
	const uint32_t mapped[1] = { 1 };
	const uint64_t now = hp_now_us();
	struct hp_rt_applied *list = NULL;
	size_t nr = 0;

	(void)state;
	assert_true(hp_task_is_kthread(2));
	assert_int_not_equal(hp_rt_query(2, &list, &nr), 0);
	hp_policy_init(&d.pol);
	pr = ag_add_proc(&d, 2);
	assert_non_null(pr);
	pr->due_us = 0;
	ag_reconcile_patches(&d, pr, mapped, now);
	assert_false(pr->gone);
	assert_true(pr->due_us > now);
	hp_policy_release(&d.pol);
	free(d.procs);
}

/*
 * A second exec within the first rescan's delay (a wrapper: env, nice,
 * sh -c 'exec ...'), every patch waiting for ld.so: the new image's first
 * look is the rescan's delay after its own exec, not the old image's (it
 * would come while ld.so still loads, and wait for the 30 ms rescan).
 */
static void test_exec_again_first_look(void **state)
{
	struct ag_daemon d = { .nr_wanted = 1, .nr_at_exec = 0 };
	struct ag_proc *pr = NULL;
	uint64_t first = 0;

	(void)state;
	ag_on_exec(&d, 4242, 1000000);
	pr = ag_find_proc(&d, 4242);
	assert_non_null(pr);
	assert_true(pr->deferred);
	first = pr->due_us;
	assert_true(first > 1000000);
	ag_on_exec(&d, 4242, 1001000); /* 1 ms on: the wrapper's exec */
	pr = ag_find_proc(&d, 4242);
	assert_int_equal(pr->due_us, first + 1000);
	/* With a patch that goes at the exec: looked at now. */
	d.nr_at_exec = 1;
	ag_on_exec(&d, 4242, 1002000);
	assert_int_equal(ag_find_proc(&d, 4242)->due_us, 1002000);
	for (size_t i = 0; i < d.nr_procs; i++)
		free(d.procs[i].exe);
	free(d.procs);
}

/* Wait for the fallback command @child, of @pidfd, to end. Return: as
 * ag_command_status. */
static int command_end(pid_t child, int pidfd, char *how, size_t cap)
{
	struct pollfd pfd = { pidfd, POLLIN, 0 };

	assert_int_equal(poll(&pfd, 1, 5000), 1);
	return ag_command_status(child, how, cap);
}

/*
 * A fallback command runs with the facts in its environment, as hpatchd's
 * child that its pidfd reaps (hpatchd takes no SIGCHLD: one comes at every
 * stop of a target it traces), and says how it ended: a failure is known.
 */
static void test_fallback_command_reaped(void **state)
{
	char cmd[512], path[128], text[64] = "", how[64] = "";
	FILE *fp = NULL;
	int pidfd = -1;
	pid_t child;

	(void)state;
	snprintf(path, sizeof(path), "%s/fallback.out", dir);
	snprintf(cmd, sizeof(cmd),
		 "echo \"$HPATCH_PID $HPATCH_PATCH $HPATCH_REASON\" >%s", path);
	child = ag_run_command(cmd, 4242, "p.hpatch", "", "busy", &pidfd);
	assert_true(child > 0 && pidfd >= 0);
	assert_int_equal(command_end(child, pidfd, how, sizeof(how)), 0);
	close(pidfd);
	fp = fopen(path, "r");
	assert_non_null(fp);
	assert_non_null(fgets(text, sizeof(text), fp));
	fclose(fp);
	assert_string_equal(text, "4242 p.hpatch busy\n");
	child = ag_run_command("exit 3", 4242, "p.hpatch", "", "busy", &pidfd);
	assert_true(child > 0 && pidfd >= 0);
	assert_hp_err(command_end(child, pidfd, how, sizeof(how)),
		      HP_E_FALLBACK);
	assert_string_equal(how, "exited with status 3");
	close(pidfd);
	errno = 0;
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

/* In a child, with pidfd_open failing ENOSYS as before Linux 5.3 (hpatch
 * runs from 4.17): a fallback command still runs, is reaped, and says how
 * it ended. Its exit: 0, else the step that failed. */
static int no_pidfd_child(void)
{
	struct sock_filter insns[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_pidfd_open, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { HP_ARRAY_SIZE(insns), insns };
	char how[64] = "";
	int pidfd = 0, rc = -EAGAIN;
	pid_t child;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		return 1;
	child = ag_run_command("exit 3", 4242, "p.hpatch", "", "busy", &pidfd);
	if (child <= 0 || pidfd != -1)
		return 2;
	for (int i = 0; i < 500 && rc == -EAGAIN; i++) {
		usleep(10000);
		rc = ag_command_status(child, how, sizeof(how));
	}
	if (rc != -HP_E_FALLBACK || strcmp(how, "exited with status 3"))
		return 3;
	errno = 0;
	if (waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD)
		return 4; /* a zombie left */
	return 0;
}

static void test_fallback_command_no_pidfd(void **state)
{
	pid_t pid;
	int status = 0;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(no_pidfd_child());
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* Resume @pid (traced, stopped) to its next flock() entry: true (*@fd:
 * the file descriptor it locks), or false when it exits first (*status
 * then holds its wait status). */
static bool run_to_flock(pid_t pid, int *status, int *fd)
{
	int sig = 0;

	for (;;) {
		struct user_regs_struct regs;

		assert_int_equal(ptrace(PTRACE_SYSCALL, pid, 0, sig), 0);
		assert_int_equal(waitpid(pid, status, 0), pid);
		if (!WIFSTOPPED(*status))
			return false;
		sig = WSTOPSIG(*status);
		if (sig != (SIGTRAP | 0x80))
			continue;
		sig = 0;
		assert_int_equal(ptrace(PTRACE_GETREGS, pid, 0, &regs), 0);
		/* At a syscall's entry, rax holds -ENOSYS. */
		if (regs.orig_rax == SYS_flock &&
		    regs.rax == (unsigned long long)-ENOSYS) {
			*fd = (int)regs.rdi;
			return true;
		}
	}
}

enum swap_kind { SWAP_RENAME, SWAP_RECREATE, SWAP_REMOVE };

/*
 * One caller of hp_store_lock(@try) whose lock file is swapped between its
 * open and its flock: the child is stopped (ptrace) at its first flock's
 * entry, the file replaced (@kind) and, unless removed, the new one locked
 * here. The child must not return holding the old inode beside us: it
 * looks again, waits for (or, with @try, gives up on) the new one.
 */
static void lock_swapped(const char *name, enum swap_kind kind, bool try)
{
	char store[128], path[160], other[160], locked[64];
	int status = 0, fd = -1, child_fd = -1;
	struct stat live, again;
	pid_t pid;

	snprintf(store, sizeof(store), "%s/%s", dir, name);
	snprintf(path, sizeof(path), "%s/.lock", store);
	snprintf(other, sizeof(other), "%s/lock.new", store);
	assert_int_equal(mkdir(store, 0755), 0);
	close(open(path, O_RDONLY | O_CREAT, 0600));
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		struct stat held, now;
		int lock;

		ptrace(PTRACE_TRACEME, 0, 0, 0);
		raise(SIGSTOP);
		lock = hp_store_lock(store, try);
		if (lock < 0)
			_exit(lock == -EWOULDBLOCK ? 2 : 3);
		/* 0: the lock is the one at the path. */
		_exit(fstat(lock, &held) || stat(path, &now) ||
		      held.st_dev != now.st_dev || held.st_ino != now.st_ino);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSTOPPED(status));
	assert_int_equal(ptrace(PTRACE_SETOPTIONS, pid, 0,
				PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL),
			 0);
	assert_true(run_to_flock(pid, &status, &child_fd));
	/* The child has the old file open: swap it. */
	if (kind == SWAP_RENAME) {
		fd = open(other, O_RDONLY | O_CREAT, 0600);
		assert_int_equal(rename(other, path), 0);
	} else {
		assert_int_equal(unlink(path), 0);
		if (kind == SWAP_RECREATE)
			fd = open(path, O_RDONLY | O_CREAT, 0600);
	}
	if (kind != SWAP_REMOVE)
		assert_int_equal(flock(fd, LOCK_EX), 0);
	/* Its flock of the old file succeeds: it must look again, and lock
	 * the file now at the path. */
	if (!run_to_flock(pid, &status, &child_fd))
		fail_msg("%s: the caller returned (exit %d) with the "
			 "replaced lock file",
			 name, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	snprintf(locked, sizeof(locked), "/proc/%d/fd/%d", (int)pid, child_fd);
	assert_int_equal(stat(locked, &again), 0);
	assert_int_equal(stat(path, &live), 0);
	assert_true(again.st_dev == live.st_dev && again.st_ino == live.st_ino);
	if (!try && fd >= 0) {
		close(fd);
		fd = -1;
	}
	assert_false(run_to_flock(pid, &status, &child_fd));
	assert_true(WIFEXITED(status));
	/* With @try and the new file held: busy; else the live lock. */
	assert_int_equal(WEXITSTATUS(status), try && fd >= 0 ? 2 : 0);
	if (fd >= 0)
		close(fd);
}

static void test_store_lock_swapped(void **state)
{
	(void)state;
	lock_swapped("renamed", SWAP_RENAME, false);
	lock_swapped("renamed-try", SWAP_RENAME, true);
	lock_swapped("recreated", SWAP_RECREATE, false);
	lock_swapped("recreated-try", SWAP_RECREATE, true);
	lock_swapped("removed", SWAP_REMOVE, false);
	lock_swapped("removed-try", SWAP_REMOVE, true);
}

/* Is the file @l holds open the one at @path? */
static bool holds_file_at(const struct ag_store_lock *l, const char *path)
{
	struct stat held, now;

	return l->fd >= 0 && !fstat(l->fd, &held) && !stat(path, &now) &&
	       held.st_dev == now.st_dev && held.st_ino == now.st_ino;
}

/* Can another take the lock of the file at @path now? */
static bool lock_free(const char *path)
{
	const int fd = open(path, O_RDONLY);
	const bool free_now = fd >= 0 && !flock(fd, LOCK_EX | LOCK_NB);

	if (fd >= 0)
		close(fd);
	return free_now;
}

/*
 * hpatchd's store lock keeps its file open from one pass to the next: the
 * lock it takes is still that of the file at the path, whatever happened
 * to the path in between (renamed over, removed), and another's lock of
 * that file keeps it out.
 */
static void test_store_lock_kept(void **state)
{
	struct ag_store_lock l = { .fd = -1 };
	char store[128], path[160], other[160];
	int fd = -1, kept = -1;

	(void)state;
	snprintf(store, sizeof(store), "%s/kept", dir);
	snprintf(path, sizeof(path), "%s/.lock", store);
	snprintf(other, sizeof(other), "%s/lock.new", store);
	/* Made with the store, then held: no one else gets it. */
	assert_int_equal(ag_store_lock(&l, store), 0);
	assert_true(holds_file_at(&l, path));
	assert_false(lock_free(path));
	ag_store_unlock(&l);
	assert_true(lock_free(path));
	/* Held by another between two passes: busy, the file kept. */
	kept = l.fd;
	fd = open(path, O_RDONLY);
	assert_int_equal(flock(fd, LOCK_EX), 0);
	assert_int_equal(ag_store_lock(&l, store), -EWOULDBLOCK);
	assert_int_equal(l.fd, kept);
	close(fd);
	assert_int_equal(ag_store_lock(&l, store), 0);
	assert_int_equal(l.fd, kept);
	ag_store_unlock(&l);
	/* Renamed over and the new file held: busy, though its own old
	 * file is free. */
	fd = open(other, O_RDONLY | O_CREAT, 0600);
	assert_int_equal(rename(other, path), 0);
	assert_int_equal(flock(fd, LOCK_EX), 0);
	assert_int_equal(ag_store_lock(&l, store), -EWOULDBLOCK);
	close(fd);
	/* Let go: the new one locked, the one at the path. */
	assert_int_equal(ag_store_lock(&l, store), 0);
	assert_true(holds_file_at(&l, path));
	assert_false(lock_free(path));
	ag_store_unlock(&l);
	/* Removed: made again, and that one locked. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(ag_store_lock(&l, store), 0);
	assert_true(holds_file_at(&l, path));
	assert_false(lock_free(path));
	ag_store_unlock(&l);
	assert_true(lock_free(path));
	ag_store_lock_release(&l);
	assert_int_equal(l.fd, -1);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policy_defaults),
		cmocka_unit_test(test_policy_full),
		cmocka_unit_test(test_policy_include),
		cmocka_unit_test(test_policy_exe_unknown),
		cmocka_unit_test(test_policy_window),
		cmocka_unit_test(test_policy_empty_window),
		cmocka_unit_test(test_policy_perf),
		cmocka_unit_test(test_policy_errors),
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_policy_exe_symlink),
		cmocka_unit_test(test_policy_exe_symlink_later),
		cmocka_unit_test(test_unit_of),
		cmocka_unit_test(test_unit_of_long),
		cmocka_unit_test(test_start_time),
		cmocka_unit_test(test_view_roundtrip),
		cmocka_unit_test(test_maps_line),
		cmocka_unit_test(test_match_self),
		cmocka_unit_test_teardown(test_match_file_changes, kill_loader),
		cmocka_unit_test_teardown(test_match_leased, kill_loader),
		cmocka_unit_test_teardown(test_match_fd_limit, kill_loader),
		cmocka_unit_test_teardown(test_match_unreadable, kill_loader),
		cmocka_unit_test(test_sharers_from_events),
		cmocka_unit_test_teardown(test_events_lost, kill_sleeps),
		cmocka_unit_test_teardown(test_events_forget_exits,
					  kill_sleeps),
		cmocka_unit_test(test_exec_again_first_look),
		cmocka_unit_test(test_query_failed_looks_again),
		cmocka_unit_test(test_leader_exit_keeps_process),
		cmocka_unit_test(test_leader_exit_start_time),
		cmocka_unit_test(test_leader_in_exit),
		cmocka_unit_test(test_view_older),
		cmocka_unit_test(test_fallbacks_record),
		cmocka_unit_test(test_fallback_command_reaped),
		cmocka_unit_test(test_fallback_command_no_pidfd),
		cmocka_unit_test(test_store_lock_swapped),
		cmocka_unit_test(test_store_lock_kept),
	};

	if (argc == 2 && !strcmp(argv[1], "--sharers-helper"))
		return sharers_helper();
	return cmocka_run_group_tests(tests, setup, teardown);
}
