/*
 * v2 changes a function whose code holds a relocation no patch can carry:
 * R_X86_64_SIZE32, the link-time size of a symbol. hpdiff must refuse it
 * by type, section, offset and symbol.
 */
#include <stdio.h>

int table[16];

__attribute__((noinline)) int table_bytes(void)
{
	int n;

	/* mov $imm32, reg; the immediate (the last 4 bytes) is the size. */
	__asm__("movl $0, %0\n\t.reloc .-4, R_X86_64_SIZE32, table" : "=r"(n));
#if V == 1
	return n;
#else
	return n / 4;
#endif
}

int main(void)
{
	printf("%d\n", table_bytes());
	return 0;
}
