/*
 * v2 changes count_to, whose loop branches back to its entry + 2 (after a
 * 2-byte instruction): the 5-byte jump written at the entry would split
 * the loop's first instruction, so hpdiff must refuse it. Hand-written, so
 * that every compiler and flag set gives the same bytes.
 */
#include <stdio.h>

#if V == 1
#define LIMIT "	cmp $10, %eax\n"
#else
#define LIMIT "	cmp $20, %eax\n"
#endif

int count_to(void);
__asm__(".text\n"
	".globl count_to\n"
	".type count_to, @function\n"
	"count_to:\n"
	"	xor %eax, %eax\n"
	"1:	inc %eax\n" LIMIT "	jl 1b\n"
	"	ret\n"
	".size count_to, .-count_to\n");

int main(void)
{
	printf("%d\n", count_to());
	return 0;
}
