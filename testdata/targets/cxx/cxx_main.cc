/*
 * C++ target (tests/e2e/cxx.sh): prints "ready pid=N", then a "result"
 * line whenever what it measures changes: a Rect's area through a virtual
 * call, clamped by a template instance, scaled by inline functions that
 * this object uses too (so both objects carry their COMDAT copies).
 */
#include "shapes.h"

#include <cstdio>
#include <cstring>
#include <unistd.h>

static volatile int side = 40;

__attribute__((noinline)) int area_of(const Shape &s)
{
	return s.area();
}

int main()
{
	char buf[128], last[128] = "";
	Rect r;

	setvbuf(stdout, nullptr, _IOLBF, 0);
	std::printf("ready pid=%d %d %d\n", (int)getpid(),
		    clampv<int>(side, 0, 5), unchanged_inline(scaled(1)));
	for (;;) {
		r.w = side;
		r.h = side;
		measure(r, buf, (int)sizeof(buf));
		if (std::strcmp(buf, last)) {
			std::printf("result %s\n", buf);
			std::strcpy(last, buf);
		}
		usleep(10000);
	}
}
