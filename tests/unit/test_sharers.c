/*
 * Unit tests of the sharers index (runtime/rt_sharers.c, its statics
 * reached by including it): a run over many targets builds it once, and
 * asks the tasks created since one by one, by pid, from the last pid
 * then to the last pid now. When so many were created that the pids may
 * have gone all the way round (pid_max forks), the last pid cannot tell:
 * the index is made again.
 */
#include "hp_test.h"

#include "runtime/rt_sharers.c"

#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>

/*
 * A sharer started after the index, with the pids gone round since (as
 * the index sees it: its last pid is now's, and pid_max forks later):
 * the walk from the last pid asks nothing; it must still be found.
 */
static void test_since_wrapped(void **state)
{
	enum { STACK = 64 << 10 };
	char *stack = malloc(STACK);
	struct hp_rt_sharers *s = NULL;
	pid_t vm = 0;

	(void)state;
	assert_non_null(stack);
	assert_hp_ok(hp_rt_sharers_new(&s));
	assert_true(s->built_forks > 0);
	vm = clone(hp_test_share_and_wait, stack + STACK, CLONE_VM | SIGCHLD,
		   NULL);
	assert_true(vm > 0);
	/* Few forks since: the walk finds it. */
	assert_hp_err(hp_proc_check_alone(getpid(), s), HP_E_BUSY);
	/* Gone round: the last pid is where it was, the forks many. */
	s->built_last = hp_last_pid();
	s->built_forks -= HP_SINCE_MAX + 1;
	assert_hp_err(hp_proc_check_alone(getpid(), s), HP_E_BUSY);
	/* Made again meanwhile: the sharer is in it now. */
	assert_true(forks_total() - s->built_forks <= HP_SINCE_MAX);
	assert_hp_err(hp_proc_check_alone(getpid(), s), HP_E_BUSY);
	kill(vm, SIGKILL);
	assert_int_equal(waitpid(vm, NULL, 0), vm);
	assert_hp_ok(hp_proc_check_alone(getpid(), s));
	hp_rt_sharers_free(s);
	free(stack);
}

/* The count of tasks created since boot grows with each fork. */
static void test_forks_total(void **state)
{
	const uint64_t before = forks_total();
	pid_t child;

	(void)state;
	assert_true(before > 0);
	child = fork();
	if (child == 0)
		_exit(0);
	assert_int_equal(waitpid(child, NULL, 0), child);
	assert_true(forks_total() > before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_since_wrapped),
		cmocka_unit_test(test_forks_total),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
