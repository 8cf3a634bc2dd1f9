/*
 * Another user of libgreet, without greet_host's code: each line on stdin
 * is a command. "greet" prints greet_reply("x"); "load" dlopen()s
 * libtlslib-v1.so (found beside this program); "tl" prints its tl_step().
 * usage: lib_user   prints "lib_user: ready pid=N".
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int greet_reply(char *buf, size_t cap, const char *name);

int main(void)
{
	char line[64], buf[256];
	long (*tl_step)(void) = NULL;

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("lib_user: ready pid=%d\n", (int)getpid());
	while (fgets(line, sizeof(line), stdin)) {
		if (!strncmp(line, "load", 4)) {
			void *h = dlopen("libtlslib-v1.so", RTLD_NOW);

			tl_step =
				h ? (long (*)(void))dlsym(h, "tl_step") : NULL;
			printf("%s\n", tl_step ? "loaded" : dlerror());
		} else if (!strncmp(line, "tl", 2) && tl_step) {
			printf("tl %ld\n", tl_step());
		} else {
			greet_reply(buf, sizeof(buf), "x");
			printf("%s\n", buf);
		}
	}
	return 0;
}
