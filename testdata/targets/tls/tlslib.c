/*
 * Thread-locals of a shared library (-fPIC), each accessed the way gcc does
 * there: tl_count (exported) general-dynamic, tl_steps (file-local)
 * local-dynamic, tl_base initial-exec. v2 (-DV=2) steps tl_count by 2
 * instead of 1; every thread's values must continue, not restart.
 */
__thread long tl_count;
static __thread long tl_steps;
__attribute__((tls_model("initial-exec"))) __thread long tl_base = 1000;

__attribute__((noinline)) long tl_step(void)
{
#if V == 1
	tl_count += 1;
#else
	tl_count += 2;
#endif
	tl_steps++;
	return tl_count + tl_base;
}

long tl_steps_seen(void)
{
	return tl_steps;
}
