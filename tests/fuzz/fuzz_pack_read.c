/*
 * libFuzzer target for the .hpatch reader. The signature check is skipped
 * (HP_PACK_NO_VERIFY) so the fuzzer reaches the parser: in production no
 * unsigned byte gets this far.
 */
#include "common/hp_log.h"
#include "packer/packer.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void quiet(enum hp_log_level level, const char *msg, void *ctx)
{
	(void)level;
	(void)msg;
	(void)ctx;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hp_patch *p = NULL;

	hp_log_set_sink(quiet, NULL);
	if (!hp_pack_read("fuzz", data, size, NULL, HP_PACK_NO_VERIFY, &p)) {
		/* Whatever the reader accepts, the writer must accept too. */
		struct hp_buf out = { 0 };

		if (hp_pack_write(p, NULL, &out))
			__builtin_trap();
		hp_buf_release(&out);
	}
	hp_patch_free(p);
	return 0;
}
