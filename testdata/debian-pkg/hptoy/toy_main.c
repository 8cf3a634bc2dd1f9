/*
 * hptoy: reads one command a line on stdin and answers one line, so a
 * test can ask the same running process before and after a live patch.
 *   get N      the slot N of libhptoy (toy_get)
 *   echo TEXT  TEXT, at most 8 bytes of it (echo_len is the program's bug)
 */
#include "toy.h"

#include <stdio.h>
#include <string.h>

__attribute__((noinline)) static size_t echo_len(const char *text)
{
	return strlen(text);
}

int main(void)
{
	char line[256];

	setvbuf(stdout, NULL, _IOLBF, 0);
#ifdef TOY_ALT
	printf("ready hptoy-alt lib %d\n", toy_version());
#else
	printf("ready hptoy lib %d\n", toy_version());
#endif
	while (fgets(line, sizeof(line), stdin)) {
		int idx;

		line[strcspn(line, "\n")] = 0;
		if (sscanf(line, "get %d", &idx) == 1) {
			const char *s = toy_get(idx);

			printf("slot %d %s\n", idx, s ? s : "refused");
		} else if (!strncmp(line, "echo ", 5)) {
			printf("echo %.*s\n", (int)echo_len(line + 5),
			       line + 5);
		} else {
			printf("unknown\n");
		}
	}
	return 0;
}
