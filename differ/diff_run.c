/*
 * hpdiff's driver: pair the old and new objects (two files, or two build
 * trees matched by relative path), correlate each pair, then build the patch
 * and fill its metadata. Every refusal is collected before failing once.
 */
#include "differ/differ_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"

#include <errno.h>
#include <ftw.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct file_list {
	char **paths; /* relative to the root */
	size_t nr;
	size_t root_len;
};

static struct file_list *walk_list; /* nftw has no context argument */

static int walk_cb(const char *path, const struct stat *st, int flag,
		   struct FTW *ftw)
{
	size_t len = strlen(path);
	char **paths = NULL;

	(void)st;
	(void)ftw;
	if (flag != FTW_F || len < 2 || strcmp(path + len - 2, ".o"))
		return 0;
	paths = realloc(walk_list->paths, (walk_list->nr + 1) * sizeof(*paths));
	if (!paths)
		return -ENOMEM;
	walk_list->paths = paths;
	paths[walk_list->nr] = strdup(path + walk_list->root_len + 1);
	if (!paths[walk_list->nr])
		return -ENOMEM;
	walk_list->nr++;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int list_objects(const char *root, struct file_list *l)
{
	size_t len = strlen(root);
	int rc;

	while (len > 1 && root[len - 1] == '/')
		len--;
	l->root_len = len;
	walk_list = l;
	rc = nftw(root, walk_cb, 32, FTW_PHYS);
	walk_list = NULL;
	if (rc < 0)
		return hp_error_rc(-errno, "'%s'", root);
	if (rc > 0)
		return -ENOMEM;
	if (l->nr)
		qsort(l->paths, l->nr, sizeof(*l->paths), cmp_str);
	return 0;
}

static void file_list_release(struct file_list *l)
{
	for (size_t i = 0; i < l->nr; i++)
		free(l->paths[i]);
	free(l->paths);
}

static int open_pair(const char *old_root, const char *new_root,
		     const char *old_rel, const char *new_rel,
		     struct hp_pair *p)
{
	char *path = NULL;
	int rc = 0;

	if (old_rel) {
		if (asprintf(&path, "%s/%s", old_root, old_rel) < 0)
			return -ENOMEM;
		rc = hp_obj_open(path, old_rel, &p->old_obj);
		free(path);
		if (rc)
			return rc;
	}
	if (new_rel) {
		if (asprintf(&path, "%s/%s", new_root, new_rel) < 0)
			return -ENOMEM;
		rc = hp_obj_open(path, new_rel, &p->new_obj);
		free(path);
	}
	return rc;
}

/* Merge two sorted lists of relative paths into pairs. */
static int pair_trees(const struct hp_diff_module *opts, struct hp_pair **out,
		      size_t *nr_out)
{
	struct file_list ol = { 0 }, nl = { 0 };
	struct hp_pair *pairs = NULL;
	size_t i = 0, j = 0, n = 0;
	int rc;

	rc = list_objects(opts->old_path, &ol);
	if (!rc)
		rc = list_objects(opts->new_path, &nl);
	if (rc)
		goto out_release;
	if (!nl.nr) {
		rc = hp_error(-ENOENT, "'%s': no object files (*.o) in tree",
			      opts->new_path);
		goto out_release;
	}
	pairs = calloc(ol.nr + nl.nr, sizeof(*pairs));
	if (!pairs) {
		rc = -ENOMEM;
		goto out_release;
	}
	while (!rc && (i < ol.nr || j < nl.nr)) {
		int c = i == ol.nr   ? 1
			: j == nl.nr ? -1
				     : strcmp(ol.paths[i], nl.paths[j]);

		rc = open_pair(opts->old_path, opts->new_path,
			       c <= 0 ? ol.paths[i] : NULL,
			       c >= 0 ? nl.paths[j] : NULL, &pairs[n++]);
		i += c <= 0;
		j += c >= 0;
	}
	*out = pairs;
	*nr_out = n;
out_release:
	file_list_release(&ol);
	file_list_release(&nl);
	return rc;
}

static int pair_files(const struct hp_diff_module *opts, struct hp_pair **out,
		      size_t *nr_out)
{
	struct hp_pair *p = calloc(1, sizeof(*p));
	const char *slash = strrchr(opts->new_path, '/');
	const char *rel = slash ? slash + 1 : opts->new_path;
	int rc;

	if (!p)
		return -ENOMEM;
	*out = p;
	*nr_out = 1;
	rc = hp_obj_open(opts->old_path, rel, &p->old_obj);
	if (!rc)
		rc = hp_obj_open(opts->new_path, rel, &p->new_obj);
	return rc;
}

static int fill_meta(const struct hp_diff_opts *opts, struct hp_patch *p)
{
	const struct passwd *pw = getpwuid(getuid());
	char host[256] = "";

	gethostname(host, sizeof(host) - 1);
	p->created = (uint64_t)time(NULL);
	p->sequence = opts->sequence ? opts->sequence : p->created;
	p->expires = opts->expires;
	p->id = strdup(opts->patch_id ? opts->patch_id : "patch");
	p->description = strdup(opts->description ? opts->description : "");
	if (asprintf(&p->creator, "%s@%s", pw ? pw->pw_name : "?", host) < 0)
		p->creator = NULL;
	return p->id && p->description && p->creator ? 0 : -ENOMEM;
}

/* A module none of whose functions changed is left out of the patch. */
static void drop_unchanged(struct hp_patch *p)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < p->nr_modules; i++) {
		if (p->modules[i].nr_funcs) {
			p->modules[n++] = p->modules[i];
			continue;
		}
		hp_log(HP_LOG_INFO,
		       "'%s': no changed functions; not in the "
		       "patch",
		       p->modules[i].name);
		hp_module_release(&p->modules[i]);
	}
	p->nr_modules = n;
}

/* Source file and line of this module's report entries, from @first on. */
static void locate_sources(struct hp_pair *pairs, size_t nr_pairs,
			   struct hp_diff_report *r, uint32_t from)
{
	for (size_t i = 0; i < nr_pairs; i++) {
		struct hp_obj *o = pairs[i].new_obj;
		uint32_t first = from, n = 0;

		if (!o)
			continue;
		/* Report entries of one object are contiguous. */
		while (first < r->nr_funcs &&
		       strcmp(r->funcs[first].object, o->relpath))
			first++;
		while (first + n < r->nr_funcs &&
		       !strcmp(r->funcs[first + n].object, o->relpath))
			n++;
		if (n)
			hp_dwarf_locate(o->path, r->funcs + first, n);
	}
}

static void free_pairs(struct hp_pair *pairs, size_t nr_pairs)
{
	for (size_t i = 0; i < nr_pairs; i++) {
		hp_obj_free(pairs[i].old_obj);
		hp_obj_free(pairs[i].new_obj);
	}
	free(pairs);
}

/*
 * Whether the new build shares a function with the old: an unrelated --new
 * tree would otherwise give a patch of "new" functions, main among them.
 */
static bool shares_a_function(const struct hp_pair *pairs, size_t nr_pairs)
{
	bool old_funcs = false;

	for (size_t i = 0; i < nr_pairs; i++) {
		const struct hp_obj *o = pairs[i].old_obj,
				    *n = pairs[i].new_obj;

		for (size_t j = 0; n && j < n->nr_syms; j++)
			if (hp_osym_is_func(&n->syms[j]) && n->syms[j].twin)
				return true;
		for (size_t j = 0; o && j < o->nr_syms && !old_funcs; j++)
			old_funcs = hp_osym_is_func(&o->syms[j]);
	}
	return !old_funcs;
}

/*
 * Correlate every pair and run the checks that look at both builds.
 * Return: 0 (refusals in @r), or an error already reported.
 */
static int compare_pairs(const struct hp_diff_opts *opts,
			 const struct hp_diff_module *mod,
			 struct hp_pair *pairs, size_t nr_pairs,
			 struct hp_diff_report *r)
{
	int rc = 0;

	for (size_t i = 0; !rc && i < nr_pairs; i++)
		rc = hp_correlate_pair(&pairs[i], r);
	if (!rc && !shares_a_function(pairs, nr_pairs)) {
		rc = hp_error(-HP_E_UNRELATED,
			      "'%s' and '%s': no function of the new build "
			      "pairs with one of the old",
			      mod->new_path, mod->old_path);
		hp_hint("give --old and --new two builds of the same program; "
			"objects pair by relative path, functions by name");
	}
	if (!rc)
		rc = hp_check_safety(pairs, nr_pairs, r,
				     opts->include_line_changes);
	for (size_t i = 0; !rc && i < nr_pairs; i++)
		if (pairs[i].old_obj && pairs[i].new_obj)
			rc = hp_check_entries(pairs[i].old_obj,
					      pairs[i].new_obj, r);
	return rc;
}

/* --debug timing: what cutting and decoding shared sections cost. */
static void log_split_time(const struct hp_pair *pairs, size_t nr_pairs)
{
	uint64_t us = 0;
	size_t n = 0;

	if (!hp_debug_on(HP_DBG_TIMING))
		return;
	for (size_t i = 0; i < nr_pairs; i++) {
		const struct hp_obj *o[2] = { pairs[i].old_obj,
					      pairs[i].new_obj };

		for (int k = 0; k < 2; k++)
			if (o[k]) {
				us += o[k]->split_us;
				n += o[k]->nr_pieces > 0;
			}
	}
	hp_dbg(HP_DBG_TIMING,
	       "split_ms=%.1f: shared sections of %zu objects cut and decoded",
	       (double)us / 1000, n);
}

/* The module's object counts; a removed object is warned about. */
static void count_objects(const struct hp_diff_module *mod,
			  const struct hp_pair *pairs, size_t nr_pairs,
			  struct hp_diff_report *r)
{
	r->modules[r->nr_modules - 1].nr_objects = (uint32_t)nr_pairs;
	r->nr_objects += (uint32_t)nr_pairs;
	for (size_t i = 0; i < nr_pairs; i++) {
		struct hp_diff_report_module *rm =
			&r->modules[r->nr_modules - 1];

		rm->nr_added += !pairs[i].old_obj;
		rm->nr_removed += !pairs[i].new_obj;
		/* A failed build leaves objects out, and would pass for
		 * "no change": say so. */
		if (!pairs[i].new_obj)
			hp_warn("'%s' is in '%s' but not in '%s': removed from "
				"the build? Its code stays in the running "
				"program, unpatched",
				pairs[i].old_obj->relpath, mod->old_path,
				mod->new_path);
	}
}

/*
 * Prove that @bin was linked from the old objects, then build @m. A
 * binary of another build refuses the patch: nothing else is worth
 * saying. Return: as hp_build_module(), or -HP_E_REFUSED.
 */
static int prove_and_build(const struct hp_diff_opts *opts,
			   struct hp_pair *pairs, size_t nr_pairs,
			   struct hp_binary *bin, struct hp_diff_report *r,
			   struct hp_module *m)
{
	const uint32_t before = r->nr_refused;
	int rc = hp_prove_binary(pairs, nr_pairs, bin, r,
				 &r->modules[r->nr_modules - 1]);

	if (!rc && r->nr_refused > before)
		return -HP_E_REFUSED;
	return rc ? rc : hp_build_module(opts, pairs, nr_pairs, bin, r, m);
}

/*
 * One module: compare its builds and fill @m. Return: 0, -HP_E_REFUSED
 * (refusals in the report; the other modules are still compared, so that
 * every refusal is listed), or another error.
 */
static int diff_module(const struct hp_diff_opts *opts,
		       const struct hp_diff_module *mod,
		       struct hp_diff_report *r, struct hp_module *m)
{
	struct hp_binary *bin = NULL;
	struct hp_pair *pairs = NULL;
	size_t nr_pairs = 0;
	const uint32_t first_func = r->nr_funcs, refused = r->nr_refused;
	struct stat so, sn;
	char hex[2 * HP_BUILD_ID_MAX + 1];
	int rc;

	if (stat(mod->old_path, &so) < 0)
		return hp_error_rc(-errno, "'%s'", mod->old_path);
	if (stat(mod->new_path, &sn) < 0)
		return hp_error_rc(-errno, "'%s'", mod->new_path);
	if (S_ISDIR(so.st_mode) != S_ISDIR(sn.st_mode))
		return hp_error(-EINVAL,
				"'%s' and '%s': give two object files or two "
				"build trees",
				mod->old_path, mod->new_path);
	rc = hp_binary_open(mod->binary, mod->debug_file, &bin);
	if (rc)
		return rc;
	hp_hex(hex, bin->build_id, bin->build_id_len);
	for (uint32_t i = 0; i < r->nr_modules; i++)
		if (!strcmp(r->modules[i].build_id, hex)) {
			rc = hp_error(-EINVAL,
				      "'%s': build-id %s is already the "
				      "patch's module '%s'; give each binary "
				      "once",
				      mod->binary, hex, r->modules[i].binary);
			goto out_free;
		}
	rc = hp_report_add_module(r, mod->binary, hex);
	if (!rc && !r->build_id) {
		r->build_id = strdup(hex);
		rc = r->build_id ? 0 : -ENOMEM;
	}
	if (!rc)
		rc = S_ISDIR(sn.st_mode) ? pair_trees(mod, &pairs, &nr_pairs)
					 : pair_files(mod, &pairs, &nr_pairs);
	if (!rc)
		rc = compare_pairs(opts, mod, pairs, nr_pairs, r);
	if (rc)
		goto out_free;
	log_split_time(pairs, nr_pairs);
	count_objects(mod, pairs, nr_pairs, r);
	rc = prove_and_build(opts, pairs, nr_pairs, bin, r, m);
	locate_sources(pairs, nr_pairs, r, first_func);
	if (!rc && r->nr_refused > refused)
		rc = -HP_E_REFUSED;
out_free:
	free_pairs(pairs, nr_pairs);
	hp_binary_free(bin);
	return rc;
}

int hp_diff_run(const struct hp_diff_opts *opts, struct hp_diff_report **report,
		struct hp_patch **patch)
{
	struct hp_diff_report *r = calloc(1, sizeof(*r));
	const uint32_t nr = 1 + opts->nr_more;
	struct hp_patch *p = NULL;
	bool refused = false;
	int rc = 0;

	*report = r;
	*patch = NULL;
	if (!r)
		return -ENOMEM;
	elf_version(EV_CURRENT);
	p = hp_patch_new();
	if (p)
		p->modules = calloc(nr, sizeof(*p->modules));
	if (!p || !p->modules) {
		hp_patch_free(p);
		return -ENOMEM;
	}
	p->nr_modules = nr;
	for (uint32_t i = 0; i < nr && (!rc || rc == -HP_E_REFUSED); i++) {
		const struct hp_diff_module first = {
			opts->old_path,
			opts->new_path,
			opts->binary,
			opts->debug_file,
		};

		rc = diff_module(opts, i ? &opts->more[i - 1] : &first, r,
				 &p->modules[i]);
		refused |= rc == -HP_E_REFUSED;
	}
	if (!rc && refused)
		rc = -HP_E_REFUSED;
	if (!rc && !r->nr_funcs)
		rc = -HP_E_NOCHANGE;
	if (!rc)
		drop_unchanged(p);
	if (!rc)
		rc = fill_meta(opts, p);
	if (rc)
		hp_patch_free(p);
	else
		*patch = p;
	return rc;
}
