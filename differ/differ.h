/*
 * hpdiff's engine: compare the old and new builds' relocatable objects, find
 * exactly the functions that changed, refuse what cannot be patched safely,
 * and turn the rest into a patch model (packer/packer.h) whose references to
 * the running program are already resolved against the old linked binary.
 */
#ifndef HP_DIFFER_H
#define HP_DIFFER_H

#include <stdbool.h>
#include <stdint.h>

#include "common/hp_out.h"
#include "packer/packer.h"

/* One module of a patch (a program or a shared library) and its builds. */
struct hp_diff_module {
	const char *old_path;	/* object file or build tree */
	const char *new_path;	/* same kind as old_path */
	const char *binary;	/* the old linked binary, as shipped */
	const char *debug_file; /* its separate debug file, or NULL */
};

struct hp_diff_opts {
	/* The first module (fields as in struct hp_diff_module). */
	const char *old_path;
	const char *new_path;
	const char *binary;
	const char *debug_file;
	/* Further modules carried by the same patch, e.g. a library. */
	const struct hp_diff_module *more;
	uint32_t nr_more;
	const char *patch_id; /* NULL: derived from the output name */
	const char *description;
	uint64_t sequence;	   /* 0: creation time */
	uint64_t expires;	   /* unix seconds, 0: never */
	bool include_line_changes; /* patch __LINE__-only changes too */
};

enum hp_diff_change {
	HP_DIFF_CHANGED,
	HP_DIFF_NEW,
};

struct hp_diff_func {
	char *name;
	char *demangled;    /* C++: "Rect::area() const"; NULL for C names */
	const char *module; /* the binary's file name (report-owned) */
	char *object;	    /* relative path of the new object */
	enum hp_diff_change change;
	char *reason;	/* "body changed", "new", ... */
	char *src_file; /* from DWARF, or NULL */
	unsigned int src_line;
	uint32_t old_size;
	uint32_t new_size;
};

struct hp_diff_refusal {
	char *symbol;
	char *demangled;    /* as hp_diff_func's */
	const char *module; /* the binary's file name (report-owned) */
	char *object;
	int code; /* -HP_E_* */
	char *message;
	char *hint; /* what to do, or NULL */
};

struct hp_diff_report_module {
	char *binary;	/* file name of the old binary */
	char *build_id; /* hex */
	uint32_t nr_objects;
	uint32_t nr_added;   /* objects only in the new tree */
	uint32_t nr_removed; /* objects only in the old tree (warned about) */
	/* Functions of the old objects found in the binary, and how many of
	 * them are there byte for byte (diff_proof.c). */
	uint32_t nr_proof_funcs;
	uint32_t nr_proved;
};

struct hp_diff_report {
	struct hp_diff_report_module *modules; /* in the patch's order */
	uint32_t nr_modules;
	struct hp_diff_func *funcs;
	uint32_t nr_funcs;
	/* Changed only by line numbers (a moved assert or log): not patched. */
	struct hp_diff_func *line_only;
	uint32_t nr_line_only;
	struct hp_diff_refusal *refused;
	uint32_t nr_refused;
	uint32_t nr_objects; /* object pairs compared, all modules */
	char *build_id;	     /* hex, of the first module's old binary */
};

/*
 * hp_diff_set_debug_root() - where a stripped binary's separate debug file
 * is looked for by build-id (@dir/.build-id/xx/rest.debug), when none is
 * given; NULL or "": /usr/lib/debug. Set by the tool (hpdiff reads
 * $HP_DEBUG_ROOT): the library reads no environment. Not thread-safe.
 */
void hp_diff_set_debug_root(const char *dir);

/*
 * hp_diff_run() - compare, decide, and build the patch.
 * *@report is always set (caller frees with hp_diff_report_free) unless
 * memory runs out; *@patch is set only when the result is 0.
 * Return: 0 patch built; -HP_E_NOCHANGE nothing changed; -HP_E_REFUSED with
 * every refusal listed in the report; other -errno/-HP_E_* on input errors
 * (already reported).
 */
int hp_diff_run(const struct hp_diff_opts *opts, struct hp_diff_report **report,
		struct hp_patch **patch) __attribute__((warn_unused_result));

/*
 * hp_diff_prove_object() - how much of the object @obj_path the linked
 * @binary (unstripped) holds as the proof sees it: *@nr_proved of its
 * *@nr_funcs functions match, *@nr_refused differ (hpdiff's binary proof,
 * run on this one object). For a tool choosing among objects DWARF cannot
 * tell apart (one source file built twice with other macros). Quiet but
 * for errors. Return: 0, or -errno / -HP_E_* (reported).
 */
int hp_diff_prove_object(const char *obj_path, const char *binary,
			 uint32_t *nr_proved, uint32_t *nr_funcs,
			 uint32_t *nr_refused)
	__attribute__((warn_unused_result));

/* Render the report (text or JSON, same path). */
void hp_diff_report_print(const struct hp_diff_report *r, struct hp_out *o);
void hp_diff_report_free(struct hp_diff_report *r);

#endif
