/*
 * Helpers for the hostile-host tests (issue 14): each mode does one thing a
 * production host may do next to a target, prints "hostile: ready pid=N"
 * and waits to be killed.
 *   trace PID     hold PID with PTRACE_SEIZE (a debugger, another patcher)
 *   mapfile PATH  map PATH read-only (a Python mmap, libelf, perf, gdb)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <unistd.h>

static int usage(void)
{
	fprintf(stderr, "usage: hostile trace PID | mapfile PATH\n");
	return 2;
}

int main(int argc, char **argv)
{
	if (argc != 3)
		return usage();
	if (!strcmp(argv[1], "trace")) {
		if (ptrace(PTRACE_SEIZE, atoi(argv[2]), 0, 0) < 0) {
			perror("hostile: PTRACE_SEIZE");
			return 1;
		}
	} else if (!strcmp(argv[1], "mapfile")) {
		struct stat st;
		int fd = open(argv[2], O_RDONLY);
		void *p = NULL;

		if (fd < 0 || fstat(fd, &st) < 0) {
			perror("hostile: open");
			return 1;
		}
		p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd,
			 0);
		if (p == MAP_FAILED) {
			perror("hostile: mmap");
			return 1;
		}
	} else {
		return usage();
	}
	printf("hostile: ready pid=%d\n", (int)getpid());
	fflush(stdout);
	for (;;)
		pause();
}
