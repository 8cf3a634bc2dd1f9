/*
 * IFUNC target (tests/e2e/ifunc.sh): v2's fix of describe() calls memcpy,
 * strlen, strchr and strstr, libc IFUNCs v1 never called (v1 has no PLT
 * entry or GOT slot for any of them), so the patch binds them by name at
 * apply time. Prints "ready pid=N", then "result V TEXT" whenever
 * describe()'s answer changes.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *volatile input = "key=value;rest";
static volatile int out_size = 64; /* unknown to the compiler */

/* noipa: main, which never returns, must not change with describe (IPA-RA) */
__attribute__((noipa)) int describe(const char *s, char *out, int cap)
{
#if V == 1
	int n = 0;

	/* a loop gcc does not turn into strchr or memcpy */
	while (s[n] && s[n] != '=' && n < cap - 1) {
		out[n] = (char)(s[n] ^ 0x20);
		n++;
	}
	out[n] = 0;
	return 1;
#else
	static char scratch[64];
	const char *eq = strchr(s, '=');
	const char *val = eq ? eq + 1 : s;
	size_t len = strlen(val);

	if (len >= (size_t)cap) /* cap <= sizeof(scratch): see main */
		return 4;
	/* with _FORTIFY_SOURCE, scratch's known size makes it __memcpy_chk */
	memcpy(scratch, val, len + 1);
	memcpy(out, scratch, len + 1);
	return strstr(s, "rest") ? 2 : 3;
#endif
}

int main(void)
{
	char out[64];
	int last = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready pid=%d\n", (int)getpid());
	for (;;) {
		const int v = describe(input, out, out_size);

		if (v != last)
			printf("result %d %s\n", v, out);
		last = v;
		usleep(10000);
	}
}
