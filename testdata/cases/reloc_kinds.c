/*
 * v2 changes a function whose instructions carry one relocation of each
 * type gcc and binutils emit for -fPIE x86-64 code (as the linker sees
 * them): PC32, PLT32, GOTPCREL, GOTPCRELX, REX_GOTPCRELX and PC64. It is
 * never run; hpdiff must turn each into the patch's own relocations.
 */
#include <stdio.h>

int table[16];

__attribute__((noinline)) int helper(int x)
{
	return x + 1;
}

__attribute__((noinline)) long kinds(void)
{
	long a;

	__asm__ volatile(
		"leaq table(%%rip), %0\n\t"	     /* PC32 */
		"call helper\n\t"		     /* PLT32 */
		"movq table@GOTPCREL(%%rip), %0\n\t" /* REX_GOTPCRELX */
		"call *helper@GOTPCREL(%%rip)\n\t"   /* GOTPCRELX */
		"movq 0(%%rip), %0\n\t"		     /* GOTPCREL */
		".reloc .-4, R_X86_64_GOTPCREL, table-4\n\t"
		"movabsq $0, %0\n\t" /* PC64 */
		".reloc .-8, R_X86_64_PC64, table\n\t"
		: "=r"(a)
		:
		: "memory");
#if V == 1
	return a;
#else
	return a + 1;
#endif
}

int main(int argc, char **argv)
{
	(void)argv;
	if (argc > 5)
		printf("%ld\n", kinds());
	printf("%d\n", helper(argc));
	return 0;
}
