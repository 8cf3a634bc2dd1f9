/*
 * v2 changes run_steps (a line after its loop), whose loop gcc addresses
 * as steps - 8 (it counts from 1, as lua's luaopen_package does): without
 * -fdata-sections, a reference before the start of .data.rel.ro.local,
 * which still means the object it was computed from.
 */
#include <stdio.h>

__attribute__((noinline)) void push(int (*f)(void), int i)
{
	printf("%d %d\n", f(), i);
}

static int one(void)
{
	return 1;
}

static int two(void)
{
	return 2;
}

static int three(void)
{
	return 3;
}

/* Two tables in one .data.rel.ro.local: steps does not start it. */
static int (*const picks[])(void) = { three, two, one };
static int (*const steps[])(void) = { one, two, three, NULL };

__attribute__((noinline)) int pick(int i)
{
	return picks[i % 3]();
}

__attribute__((noinline)) void run_steps(void)
{
	for (int i = 0; steps[i] != NULL; i++)
		push(steps[i], i + 1);
#if V == 2
	puts("all steps run");
#endif
}

int main(int argc, char **argv)
{
	(void)argv;
	run_steps();
	return pick(argc) - 3;
}
