/*
 * Text for error codes: the table is generated from HP_ERR_LIST so a code can
 * never lack its message.
 */
#include "common/hp_err.h"

#include <string.h>

static const char *const err_text[] = {
#define HP_ERR_TEXT(name, text) text,
	HP_ERR_LIST(HP_ERR_TEXT)
#undef HP_ERR_TEXT
};

static const char *const err_names[] = {
#define HP_ERR_NAME(name, text) #name,
	HP_ERR_LIST(HP_ERR_NAME)
#undef HP_ERR_NAME
};

static_assert(sizeof(err_text) / sizeof(err_text[0]) == HP_ERR_COUNT,
	      "every error code has a text");
static_assert(sizeof(err_names) / sizeof(err_names[0]) == HP_ERR_COUNT,
	      "every error code has a name");

const char *hp_strerror(int rc)
{
	int code = rc < 0 ? -rc : rc;

	if (rc == 0)
		return "success";
	if (code >= HP_E_BASE && code < HP_E_LAST_)
		return err_text[code - HP_E_BASE];
	return strerror(code);
}

const char *hp_err_name(int rc)
{
	int code = rc < 0 ? -rc : rc;

	if (code >= HP_E_BASE && code < HP_E_LAST_)
		return err_names[code - HP_E_BASE];
	return "HP_E_SYSTEM";
}
