// A C++ program whose v2 changes functions that throw, catch, let an
// exception through, call backtrace() and get cancelled (tests/e2e/unwind.sh,
// docs/UNWIND.md). Each round prints one line of what it saw; SIGUSR1
// cancels the worker thread, whose cleanup handler says so.
#include <csignal>
#include <cstdio>
#include <cstring>
#include <execinfo.h>
#include <link.h>
#include <pthread.h>
#include <stdexcept>
#include <unistd.h>

#ifndef V
#define V 1
#endif
#define NOINLINE __attribute__((noinline))

extern "C" {
// libgcc's lookup, as the unwinder does it: the FDE covering @pc, or NULL.
struct dwarf_eh_bases {
	void *tbase, *dbase, *func;
};
const void *_Unwind_Find_FDE(void *pc, struct dwarf_eh_bases *bases);
}

static volatile int g_destroyed; // destructors run while unwinding
static void *volatile g_where;	 // the last pc seen outside our own text
static volatile sig_atomic_t g_cancel;
static char *g_text_lo, *g_text_hi; // the executable's own code

// The executable's mapped range: the first object dl_iterate_phdr lists.
static int find_text(struct dl_phdr_info *info, size_t, void *)
{
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		char *lo = (char *)info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type != PT_LOAD)
			continue;
		if (!g_text_lo || lo < g_text_lo)
			g_text_lo = lo;
		if (lo + ph->p_memsz > g_text_hi)
			g_text_hi = lo + ph->p_memsz;
	}
	return 1;
}

struct Guard {
	~Guard() { g_destroyed = g_destroyed + 1; }
};

// Note where patched code runs (outside the executable's own text).
NOINLINE void note_pc(void *pc)
{
	if ((char *)pc < g_text_lo || (char *)pc >= g_text_hi)
		g_where = pc;
	asm volatile("" ::: "memory");
}
#define NOTE() note_pc(__builtin_return_address(0))

NOINLINE static void here(void)
{
	NOTE();
}

// Throws: v1 "old", v2 "new".
NOINLINE int thrower(int x)
{
	Guard g;
	here();
	if (x >= 0)
		throw std::runtime_error(V == 1 ? "old" : "new");
	return x;
}

NOINLINE void deep_throw(int x)
{
	if (x >= 0)
		throw std::logic_error("deep");
}

// Lets an exception through (and runs its Guard on the way).
NOINLINE int through(int x)
{
	Guard g;
	here();
	deep_throw(x);
	return V == 1 ? 1 : 2;
}

// Catches an exception thrown below it.
NOINLINE int catcher(int x)
{
	here();
	try {
		deep_throw(x);
	} catch (const std::logic_error &e) {
		return V == 1 ? 10 : 20;
	}
	return -1;
}

// Frames backtrace() sees from inside.
NOINLINE int tracer(int x)
{
	void *frames[64];
	int n;

	here();
	n = backtrace(frames, 64);
	return n + (V == 1 ? 0 : 1000) + x;
}

// A step of the worker: the only place it can be cancelled.
static void cleanup(void *)
{
	static const char msg[] = "cleanup ran\n";

	if (write(1, msg, sizeof(msg) - 1) < 0)
		_exit(1);
}

NOINLINE void work_step(int x)
{
	pthread_cleanup_push(cleanup, nullptr);
	here();
	pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, nullptr);
	usleep(2000 + x * (V == 1 ? 0 : 1));
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, nullptr);
	pthread_cleanup_pop(0);
}

static void *worker(void *)
{
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, nullptr);
	for (;;) {
		usleep(3000);
		work_step(0);
	}
	return nullptr;
}

NOINLINE static int caller(int x)
{
	try {
		return thrower(x);
	} catch (const std::runtime_error &e) {
		return e.what()[0] == 'n' ? 2 : 1;
	}
}

NOINLINE static int outer(int x)
{
	try {
		return through(x);
	} catch (const std::logic_error &e) {
		return 100;
	}
}

// Is the last pc seen in patched code covered by a registered FDE? (Kept
// out of main's frame: a copy there would keep the region mapped.)
NOINLINE static int fde_of_last(void)
{
	// Static: the unwinder writes the function's start into it, which on
	// the stack would stay behind in a dead word that hpatch's
	// conservative scan takes for a reference, keeping the region.
	static struct dwarf_eh_bases bases;
	char *where = (char *)g_where;

	return where && _Unwind_Find_FDE(where - 1, &bases) ? 1 : 0;
}

static void on_usr1(int)
{
	g_cancel = 1;
}

int main(int argc, char **argv)
{
	pthread_t thr;
	int x = argc > 5 ? 1 : 0;
	unsigned long round = 0;

	(void)argv;
	setvbuf(stdout, nullptr, _IOLBF, 0);
	signal(SIGUSR1, on_usr1);
	dl_iterate_phdr(find_text, nullptr);
	pthread_create(&thr, nullptr, worker, nullptr);
	printf("ready pid=%d\n", (int)getpid());
	for (;; round++) {
		int destroyed0 = g_destroyed, c, o, k, t;

		c = caller(x);
		o = outer(x);
		k = catcher(x);
		t = tracer(0);
		// Is the last patched pc still covered by a registered FDE?
		printf("round %lu caller=%d outer=%d catcher=%d frames=%d "
		       "guards=%d fde=%d\n",
		       round, c, o, k, t, g_destroyed - destroyed0,
		       fde_of_last());
		if (g_cancel == 1) {
			g_cancel = 2;
			pthread_cancel(thr);
			pthread_join(thr, nullptr);
			printf("worker joined\n");
		}
		usleep(20000);
	}
}
