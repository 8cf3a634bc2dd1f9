/*
 * x86-64 constants and instruction encodings used by the loader.
 */
#ifndef HP_ARCH_X86_64_H
#define HP_ARCH_X86_64_H

#include <stdint.h>

#define HP_X86_JMP_REL32 0xe9 /* jmp rel32 */
#define HP_X86_JMP_REL32_SIZE 5
#define HP_X86_SYSCALL_0 0x0f /* syscall = 0f 05 */
#define HP_X86_SYSCALL_1 0x05
#define HP_X86_SYSCALL_SIZE 2
#define HP_X86_PAGE_SIZE 4096ULL
/* User space ends below this on 4-level paging (mmap never goes higher). */
#define HP_X86_USER_TOP 0x7ffffffff000ULL
/* rel32 reach: a PC-relative target must lie within +-2 GiB. */
#define HP_X86_REL32_REACH 0x7fffffffLL

/* Encode "jmp rel32" at @from to @to. Return: 0, or -1 if out of reach. */
static inline int hp_x86_encode_jmp(uint8_t out[HP_X86_JMP_REL32_SIZE],
				    uint64_t from, uint64_t to)
{
	const int64_t rel = (int64_t)(to - (from + HP_X86_JMP_REL32_SIZE));

	if (rel > HP_X86_REL32_REACH || rel < -HP_X86_REL32_REACH - 1)
		return -1;
	out[0] = HP_X86_JMP_REL32;
	for (int i = 0; i < 4; i++)
		out[1 + i] = (uint8_t)((uint64_t)rel >> (8 * i));
	return 0;
}

#endif
