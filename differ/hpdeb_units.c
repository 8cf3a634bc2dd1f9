/*
 * hpdeb-elf objects: the .o files an ELF was linked from, by its DWARF
 * compile units (a command of differ/hpdeb_elf.c).
 */
#include "differ/hpdeb.h"
#include "common/exit.h"
#include "common/hp_cli.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"
#include "differ/differ.h"

#include <dwarf.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libdwarf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct unit {
	char *comp_dir, *name, *producer;
	char **cands; /* relative paths of the matching .o files */
	size_t nr_cands;
	const char *object; /* the one chosen, one of cands, or NULL */
};

struct units {
	struct unit *v;
	size_t nr;
};

static char *die_string(Dwarf_Die die, Dwarf_Half at)
{
	Dwarf_Attribute attr = NULL;
	Dwarf_Error err = NULL;
	char *s = NULL, *copy = NULL;

	if (dwarf_attr(die, at, &attr, &err) != DW_DLV_OK)
		return strdup("");
	if (dwarf_formstring(attr, &s, &err) == DW_DLV_OK)
		copy = strdup(s);
	else
		copy = strdup("");
	dwarf_dealloc_attribute(attr);
	return copy;
}

static void units_release(struct units *u)
{
	for (size_t i = 0; i < u->nr; i++) {
		free(u->v[i].comp_dir);
		free(u->v[i].name);
		free(u->v[i].producer);
		for (size_t k = 0; k < u->v[i].nr_cands; k++)
			free(u->v[i].cands[k]);
		free(u->v[i].cands);
	}
	free(u->v);
	u->v = NULL;
	u->nr = 0;
}

/*
 * The compile units of @path's .debug_info, each by name, directory and
 * producer (gcc records its switches there: -fPIC, -O2, -flto).
 * Return: 0, -HP_E_NODEBUG when it has none, -ENOMEM.
 */
static int read_units(const char *path, struct units *u)
{
	Dwarf_Debug dbg = NULL;
	Dwarf_Error err = NULL;
	Dwarf_Unsigned next = 0;
	Dwarf_Half cu_type = 0;
	int rc = 0, fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (dwarf_init_b(fd, DW_DLC_READ, DW_GROUPNUMBER_ANY, NULL, NULL, &dbg,
			 &err) != DW_DLV_OK) {
		close(fd);
		return -HP_E_NODEBUG;
	}
	while (!rc && dwarf_next_cu_header_d(dbg, 1, NULL, NULL, NULL, NULL,
					     NULL, NULL, NULL, NULL, &next,
					     &cu_type, &err) == DW_DLV_OK) {
		Dwarf_Die cu = NULL;
		Dwarf_Half tag = 0;
		struct unit *v;

		if (dwarf_siblingof_b(dbg, NULL, 1, &cu, &err) != DW_DLV_OK)
			continue;
		if (dwarf_tag(cu, &tag, &err) != DW_DLV_OK ||
		    tag != DW_TAG_compile_unit) {
			dwarf_dealloc_die(cu);
			continue;
		}
		v = realloc(u->v, (u->nr + 1) * sizeof(*v));
		if (!v) {
			rc = -ENOMEM;
		} else {
			u->v = v;
			v = &u->v[u->nr++];
			memset(v, 0, sizeof(*v));
			v->comp_dir = die_string(cu, DW_AT_comp_dir);
			v->name = die_string(cu, DW_AT_name);
			v->producer = die_string(cu, DW_AT_producer);
			if (!v->comp_dir || !v->name || !v->producer)
				rc = -ENOMEM;
		}
		dwarf_dealloc_die(cu);
	}
	dwarf_finish(dbg, &err);
	close(fd);
	if (!rc && !u->nr)
		rc = -HP_E_NODEBUG;
	return rc;
}

static bool same_unit(const struct unit *a, const struct unit *b)
{
	return !strcmp(a->name, b->name) && !strcmp(a->comp_dir, b->comp_dir) &&
	       !strcmp(a->producer, b->producer);
}

/* nftw has no context argument. */
static struct {
	struct units *elf_units;
	size_t root_len;
	int rc;
} walk;

static int walk_object(const char *path, const struct stat *st, int flag,
		       struct FTW *ftw)
{
	struct units ou = { 0 };
	size_t len = strlen(path);

	(void)st;
	(void)ftw;
	if (flag != FTW_F || len < 3 || strcmp(path + len - 2, ".o"))
		return 0;
	if (read_units(path, &ou)) {
		units_release(&ou);
		return 0; /* no DWARF: not compiled with -g, cannot be ours */
	}
	for (size_t i = 0; i < ou.nr; i++) {
		for (size_t j = 0; j < walk.elf_units->nr; j++) {
			struct unit *e = &walk.elf_units->v[j];
			char **c;

			if (!same_unit(&ou.v[i], e))
				continue;
			c = realloc(e->cands, (e->nr_cands + 1) * sizeof(*c));
			if (!c || !(c[e->nr_cands] =
					    strdup(path + walk.root_len + 1))) {
				if (c)
					e->cands = c;
				walk.rc = -ENOMEM;
				continue;
			}
			e->cands = c;
			e->nr_cands++;
		}
	}
	units_release(&ou);
	return walk.rc ? 1 : 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * One source file compiled twice with the same switches but other macros
 * (xz's xzdec.c, as xzdec and with -DLZMADEC as lzmadec): DWARF names
 * both objects alike, gcc records no -D. Take the one hpdiff's proof finds
 * in @elf: every function there, the data each refers to included (the
 * two often differ only in a string). A tie (the same object twice) takes
 * the first; hpdiff proves the choice again.
 */
static int choose_object(struct unit *e, const char *elf, const char *tree)
{
	size_t best = 0;
	int64_t best_score = -1;

	for (size_t k = 0; k < e->nr_cands; k++) {
		uint32_t proved = 0, funcs = 0, refused = 0;
		char *path = NULL;
		int rc;

		if (asprintf(&path, "%s/%s", tree, e->cands[k]) < 0)
			return -ENOMEM;
		rc = hp_diff_prove_object(path, elf, &proved, &funcs, &refused);
		free(path);
		if (rc == -ENOMEM)
			return rc;
		/* funcs == 0: none of its functions is linked in (the
		 * proof refuses that); nothing to tell them apart by */
		if (!rc && (!refused || !funcs) && proved > best_score) {
			best = k;
			best_score = proved;
		}
	}
	if (best_score < 0)
		hp_warn("'%s': unit '%s' (in '%s') matches %zu objects, none "
			"proved; taking '%s'",
			elf, e->name, e->comp_dir, e->nr_cands, e->cands[best]);
	e->object = e->cands[best];
	return 0;
}

/*
 * Read @elf's compile units into @u; refuse an ELF without DWARF or built
 * with link-time optimisation (its objects hold no machine code).
 */
static int read_plain_units(const char *elf, struct units *u)
{
	size_t lto = 0;
	int rc = read_units(elf, u);

	if (rc == -HP_E_NODEBUG) {
		hp_error(rc, "'%s': no DWARF compile units", elf);
		hp_hint("build with -g (Debian's default); give the unstripped "
			"ELF or its debug file");
		return rc;
	} else if (rc) {
		return hp_error_rc(rc, "'%s'", elf);
	}
	for (size_t i = 0; i < u->nr; i++) {
		if (strstr(u->v[i].producer, " -flto") && !lto++)
			hp_error(-HP_E_UNSUPPORTED,
				 "'%s': '%s' was compiled with link-time "
				 "optimisation ('%s'): its objects hold no "
				 "machine code, and code moved across files",
				 elf, u->v[i].name, u->v[i].producer);
	}
	if (lto) {
		hp_hint("rebuild both versions with "
			"DEB_BUILD_MAINT_OPTIONS=optimize=-lto; such a "
			"build is not the one shipped, so no patch can be "
			"proved for the shipped binary");
		return -HP_E_UNSUPPORTED;
	}
	return 0;
}

/* Find each unit of @u its object under @tree (e->object, or none). */
static int match_objects(struct units *u, const char *elf, const char *tree)
{
	int rc = 0;

	walk.elf_units = u;
	walk.root_len = strlen(tree);
	while (walk.root_len > 1 && tree[walk.root_len - 1] == '/')
		walk.root_len--;
	walk.rc = 0;
	if (nftw(tree, walk_object, 32, FTW_PHYS) < 0)
		return hp_error_rc(-errno, "'%s'", tree);
	if (walk.rc)
		return hp_error_rc(walk.rc, "'%s'", tree);
	for (size_t i = 0; i < u->nr && !rc; i++) {
		if (u->v[i].nr_cands == 1)
			u->v[i].object = u->v[i].cands[0];
		else if (u->v[i].nr_cands > 1)
			rc = choose_object(&u->v[i], elf, tree);
	}
	return rc;
}

/* Print the matched objects of @u, sorted, each once. */
static int print_objects(const struct units *u, const char *elf,
			 const char *tree)
{
	const char **objs = calloc(u->nr, sizeof(*objs));
	size_t nr_objs = 0, unmatched = 0;
	int rc = 0;

	if (!objs)
		return -ENOMEM;
	for (size_t i = 0; i < u->nr; i++) {
		const struct unit *e = &u->v[i];

		if (!e->object) {
			/* crt files, libgcc, static libraries of others */
			hp_log(HP_LOG_DEBUG,
			       "'%s': unit '%s' (in '%s') has no object under "
			       "'%s'",
			       elf, e->name, e->comp_dir, tree);
			unmatched++;
			continue;
		}
		objs[nr_objs++] = e->object;
	}
	if (!nr_objs) {
		rc = hp_error(-HP_E_NODEBUG,
			      "'%s': none of its %zu compile units has an "
			      "object under '%s'",
			      elf, u->nr, tree);
		hp_hint("give the build tree the package was built in, kept "
			"after dpkg-buildpackage");
		goto out;
	}
	if (unmatched)
		hp_log(HP_LOG_INFO,
		       "'%s': %zu of its %zu compile units have no object "
		       "under '%s' (crt files, libgcc, other packages' static "
		       "libraries: not this package's code; -v lists them)",
		       elf, unmatched, u->nr, tree);
	qsort(objs, nr_objs, sizeof(*objs), cmp_str);
	for (size_t i = 0; i < nr_objs; i++)
		if (!i || strcmp(objs[i], objs[i - 1]))
			printf("%s\n", objs[i]);
out:
	free(objs);
	return rc;
}

int hpdeb_cmd_objects(int argc, char **argv)
{
	struct units u = { 0 };
	int first, rc;

	rc = hpdeb_parse_operands("objects", "ELF TREE", 2, argc, argv, &first);
	if (rc >= 0)
		return rc;
	rc = read_plain_units(argv[first], &u);
	if (!rc)
		rc = match_objects(&u, argv[first], argv[first + 1]);
	if (!rc)
		rc = print_objects(&u, argv[first], argv[first + 1]);
	units_release(&u);
	return rc ? HP_EXIT_ERROR : HP_EXIT_OK;
}
