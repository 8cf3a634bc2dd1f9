/*
 * v2 gives sw_a's switch one more case, so its jump table grows by 4 bytes
 * and moves sw_b's, which .rodata then pads differently before the next
 * object: sw_b did not change.
 */
#include <stdio.h>

__attribute__((noinline)) int sink(int x)
{
	return x + 1;
}

__attribute__((noinline)) int sw_a(int x)
{
	switch (x) {
	case 0:
		return sink(3);
	case 1:
		return sink(7) + 1;
	case 2:
		return sink(x + 11) * 2;
	case 3:
		return sink(19) - 4;
	case 4:
		return sink(23) ^ 3;
#if V == 2
	case 5:
		return sink(29) | 1;
#endif
	}
	return 5;
}

__attribute__((noinline)) int sw_b(int x)
{
	switch (x) {
	case 0:
		return sink(5);
	case 1:
		return sink(9) + 1;
	case 2:
		return sink(x + 13) * 2;
	case 3:
		return sink(21) - 4;
	case 4:
		return sink(25) ^ 3;
	}
	return 6;
}

static const double scale[2] = { 1.5, 2.5 };

__attribute__((noinline)) double scaled(int i)
{
	return scale[i & 1] * i;
}

int main(int argc, char **argv)
{
	(void)argv;
	printf("%d %d %f\n", sw_a(argc), sw_b(argc), scaled(argc));
	return 0;
}
