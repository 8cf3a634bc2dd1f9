/*
 * hpdeb-elf: the ELF facts hpatch-deb (scripts/hpatch-deb) needs about a
 * Debian package it rebuilt: build-ids, whether a rebuilt ELF is the one
 * Debian shipped, the objects each ELF was linked from (by its DWARF
 * compile units), and a debug file pinned to the shipped build-id.
 */
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
#include <gelf.h>
#include <libdwarf.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUILD_ID_MAX 64
#define OBJECT_MAX (1u << 30) /* bigger than any object or debug file */

struct elf_file {
	const char *path;
	int fd;
	Elf *elf;
};

/* Open @path; with @quiet, report nothing (a search over many files). */
static int elf_file_open(struct elf_file *f, const char *path, bool quiet)
{
	GElf_Ehdr eh;

	f->path = path;
	f->elf = NULL;
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0)
		return quiet ? -errno : hp_error_rc(-errno, "'%s'", path);
	f->elf = elf_begin(f->fd, ELF_C_READ_MMAP, NULL);
	if (!f->elf || elf_kind(f->elf) != ELF_K_ELF ||
	    !gelf_getehdr(f->elf, &eh) || eh.e_machine != EM_X86_64)
		return quiet ? -HP_E_BADELF
			     : hp_error(-HP_E_BADELF,
					"'%s': not an x86-64 ELF file", path);
	return 0;
}

static void elf_file_close(struct elf_file *f)
{
	if (f->elf)
		elf_end(f->elf);
	if (f->fd >= 0)
		close(f->fd);
	f->elf = NULL;
	f->fd = -1;
}

/*
 * The GNU build-id note: its bytes and where they lie in the file.
 * Return: its length, or 0 when the file has none.
 */
static size_t find_build_id(Elf *elf, uint8_t *id, off_t *file_off)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		GElf_Nhdr nh;
		Elf_Data *d = NULL;
		size_t off = 0, name_off, desc_off;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE ||
		    !(d = elf_rawdata(scn, NULL)))
			continue;
		while ((off = gelf_getnote(d, off, &nh, &name_off, &desc_off)) >
		       0) {
			if (nh.n_type != NT_GNU_BUILD_ID || nh.n_namesz != 4 ||
			    memcmp((char *)d->d_buf + name_off, "GNU", 4) ||
			    nh.n_descsz == 0 || nh.n_descsz > BUILD_ID_MAX)
				continue;
			memcpy(id, (char *)d->d_buf + desc_off, nh.n_descsz);
			if (file_off)
				*file_off = (off_t)(sh.sh_offset + desc_off);
			return nh.n_descsz;
		}
	}
	return 0;
}

static bool has_section(Elf *elf, const char *name)
{
	Elf_Scn *scn = NULL;
	size_t shstrndx;

	if (elf_getshdrstrndx(elf, &shstrndx))
		return false;
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		const char *n;

		if (gelf_getshdr(scn, &sh) &&
		    (n = elf_strptr(elf, shstrndx, sh.sh_name)) &&
		    !strcmp(n, name))
			return true;
	}
	return false;
}

/*
 * Parse the command line of @cmd, a command without options that takes
 * exactly @nr operands (@synopsis). Return: -1 parsed, the operands from
 * argv[*first]; else the exit code.
 */
static int parse_operands(const char *cmd, const char *synopsis, int nr,
			  int argc, char **argv, int *first)
{
	static const struct hp_opt none[] = { { 0 } };
	int rc = hp_cli_parse(cmd, synopsis, none, argc, argv, first);

	if (rc >= 0)
		return rc;
	if (*first != argc - nr)
		return hp_cli_usage_error(cmd, "expected %s", synopsis);
	return -1;
}

static int cmd_build_id(int argc, char **argv)
{
	struct elf_file f = { .fd = -1 };
	uint8_t id[BUILD_ID_MAX];
	char hex[2 * BUILD_ID_MAX + 1];
	size_t len;
	int first, rc;

	rc = parse_operands("build-id", "ELF", 1, argc, argv, &first);
	if (rc >= 0)
		return rc;
	rc = elf_file_open(&f, argv[first], false);
	len = rc ? 0 : find_build_id(f.elf, id, NULL);
	elf_file_close(&f);
	if (rc)
		return HP_EXIT_ERROR;
	if (!len) {
		hp_error(-HP_E_BADELF, "'%s': no GNU build-id note",
			 argv[first]);
		hp_hint("link with -Wl,--build-id (Debian's default)");
		return HP_EXIT_ERROR;
	}
	hp_hex(hex, id, len);
	printf("%s\n", hex);
	return HP_EXIT_OK;
}

/* ---- same: is the rebuilt ELF the shipped one? ---- */

struct loaded {
	const char *name;
	GElf_Shdr sh;
	Elf_Scn *scn;
};

/* The sections a process maps (SHF_ALLOC), in file order. */
static int list_loaded(Elf *elf, struct loaded **out, size_t *nr)
{
	Elf_Scn *scn = NULL;
	size_t shstrndx, n = 0;
	struct loaded *l = NULL;

	if (elf_getshdrstrndx(elf, &shstrndx) || elf_getshdrnum(elf, &n))
		return -HP_E_BADELF;
	l = calloc(n ? n : 1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	*nr = 0;
	while ((scn = elf_nextscn(elf, scn))) {
		struct loaded *s = &l[*nr];

		if (!gelf_getshdr(scn, &s->sh) || !(s->sh.sh_flags & SHF_ALLOC))
			continue;
		s->name = elf_strptr(elf, shstrndx, s->sh.sh_name);
		if (!s->name)
			s->name = "?";
		s->scn = scn;
		(*nr)++;
	}
	*out = l;
	return 0;
}

/* The function or object of @symfile covering @addr, for the message. */
static void name_addr(const char *symfile, uint64_t addr, char *buf, size_t cap)
{
	struct elf_file f = { .fd = -1 };
	Elf_Scn *scn = NULL;

	buf[0] = 0;
	if (!symfile)
		return;
	if (elf_file_open(&f, symfile, true)) { /* a best effort */
		elf_file_close(&f);
		return;
	}
	while ((scn = elf_nextscn(f.elf, scn)) && !buf[0]) {
		GElf_Shdr sh;
		Elf_Data *d;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_SYMTAB ||
		    !(d = elf_getdata(scn, NULL)))
			continue;
		for (size_t i = 0; i < sh.sh_size / sizeof(Elf64_Sym); i++) {
			GElf_Sym sym;
			const char *n;

			if (!gelf_getsym(d, (int)i, &sym) || !sym.st_size ||
			    addr < sym.st_value ||
			    addr >= sym.st_value + sym.st_size ||
			    !(n = elf_strptr(f.elf, sh.sh_link, sym.st_name)))
				continue;
			snprintf(buf, cap, " (in '%s'+0x%llx)", n,
				 (unsigned long long)(addr - sym.st_value));
			break;
		}
	}
	elf_file_close(&f);
}

/*
 * Compare what a process maps of @a and @b: every loaded section's name,
 * type, flags, address, size and bytes, except the build-id note's bytes.
 * Report the first difference. Return: 0 if equal.
 */
static int compare_loaded(struct elf_file *a, struct elf_file *b,
			  const char *symfile)
{
	struct loaded *la = NULL, *lb = NULL;
	size_t na = 0, nb = 0;
	char where[256];
	int rc;

	rc = list_loaded(a->elf, &la, &na);
	if (!rc)
		rc = list_loaded(b->elf, &lb, &nb);
	if (rc) {
		hp_error(rc, "'%s': cannot read its section headers: %s",
			 rc == -ENOMEM ? b->path : a->path, elf_errmsg(-1));
		goto out;
	}
	for (size_t i = 0; i < na || i < nb; i++) {
		const struct loaded *x = i < na ? &la[i] : NULL;
		const struct loaded *y = i < nb ? &lb[i] : NULL;
		Elf_Data *dx, *dy;
		size_t off = 0;

		if (!x || !y || strcmp(x->name, y->name)) {
			rc = hp_error(-HP_E_FOREIGN_BINARY,
				      "'%s': loaded section %zu is '%s', in "
				      "'%s' it is '%s'",
				      a->path, i, x ? x->name : "(none)",
				      b->path, y ? y->name : "(none)");
			goto out;
		}
		if (x->sh.sh_type != y->sh.sh_type ||
		    x->sh.sh_flags != y->sh.sh_flags ||
		    x->sh.sh_addr != y->sh.sh_addr ||
		    x->sh.sh_size != y->sh.sh_size) {
			rc = hp_error(
				-HP_E_FOREIGN_BINARY,
				"'%s': section '%s' at 0x%llx size 0x%llx, "
				"in '%s' at 0x%llx size 0x%llx",
				a->path, x->name,
				(unsigned long long)x->sh.sh_addr,
				(unsigned long long)x->sh.sh_size, b->path,
				(unsigned long long)y->sh.sh_addr,
				(unsigned long long)y->sh.sh_size);
			goto out;
		}
		/* The only loaded bytes allowed to differ: the hash of all. */
		if (x->sh.sh_type == SHT_NOBITS ||
		    !strcmp(x->name, ".note.gnu.build-id"))
			continue;
		dx = elf_rawdata(x->scn, NULL);
		dy = elf_rawdata(y->scn, NULL);
		if (!dx || !dy || dx->d_size != dy->d_size) {
			rc = hp_error(-HP_E_BADELF,
				      "'%s': cannot read '%s': %s", a->path,
				      x->name, elf_errmsg(-1));
			goto out;
		}
		if (!memcmp(dx->d_buf, dy->d_buf, dx->d_size))
			continue;
		while (((const uint8_t *)dx->d_buf)[off] ==
		       ((const uint8_t *)dy->d_buf)[off])
			off++;
		name_addr(symfile, x->sh.sh_addr + off, where, sizeof(where));
		rc = hp_error(-HP_E_FOREIGN_BINARY,
			      "'%s': section '%s' differs from '%s' at offset "
			      "0x%zx, address 0x%llx%s",
			      a->path, x->name, b->path, off,
			      (unsigned long long)(x->sh.sh_addr + off), where);
		goto out;
	}
out:
	free(la);
	free(lb);
	return rc;
}

static int cmd_same(int argc, char **argv)
{
	struct elf_file a = { .fd = -1 }, b = { .fd = -1 };
	uint8_t ia[BUILD_ID_MAX], ib[BUILD_ID_MAX];
	char ha[2 * BUILD_ID_MAX + 1], hb[2 * BUILD_ID_MAX + 1];
	const char *symfile = NULL;
	size_t la, lb;
	int first, rc;
	const struct hp_opt table[] = {
		{ "symbols", 0, HP_OPT_STR, &symfile, "FILE",
		  "name the function at a difference from FILE's symbols" },
		{ 0 },
	};

	rc = hp_cli_parse("same", "SHIPPED REBUILT", table, argc, argv, &first);
	if (rc >= 0)
		return rc;
	if (first != argc - 2)
		return hp_cli_usage_error("same", "expected SHIPPED REBUILT");
	if (elf_file_open(&a, argv[first], false) ||
	    elf_file_open(&b, argv[first + 1], false)) {
		rc = HP_EXIT_ERROR;
		goto out;
	}
	la = find_build_id(a.elf, ia, NULL);
	lb = find_build_id(b.elf, ib, NULL);
	if (!la || !lb) {
		hp_error(-HP_E_BADELF, "'%s': no GNU build-id note",
			 la ? b.path : a.path);
		rc = HP_EXIT_ERROR;
		goto out;
	}
	hp_hex(ha, ia, la);
	hp_hex(hb, ib, lb);
	/*
	 * Equal build-ids: ld hashed the same inputs. Still compare: a
	 * build-id is a claim of the file, not a proof.
	 */
	if (compare_loaded(&a, &b, symfile)) {
		hp_hint("'%s' was not built from this source with these flags "
			"and this toolchain",
			a.path);
		rc = HP_EXIT_ERROR;
		goto out;
	}
	if (la == lb && !memcmp(ia, ib, la))
		printf("build-id-equal %s\n", ha);
	else
		printf("sections-equal %s %s\n", ha, hb);
	rc = HP_EXIT_OK;
out:
	elf_file_close(&a);
	elf_file_close(&b);
	return rc;
}

/* ---- objects: the .o files an ELF was linked from ---- */

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

static int cmd_objects(int argc, char **argv)
{
	struct units u = { 0 };
	int first, rc;

	rc = parse_operands("objects", "ELF TREE", 2, argc, argv, &first);
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

/* ---- find-debug: the rebuilt ELF with symbols and DWARF, by build-id ---- */

static struct {
	uint8_t id[BUILD_ID_MAX];
	size_t len;
	char *best;
	bool best_plain; /* no dwz alt file: its strings all readable */
} want;

static int walk_debug(const char *path, const struct stat *st, int flag,
		      struct FTW *ftw)
{
	struct elf_file f = { .fd = -1 };
	uint8_t id[BUILD_ID_MAX], magic[4];
	bool plain;
	int fd;

	(void)ftw;
	if (flag != FTW_F || st->st_size < 64)
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (pread(fd, magic, 4, 0) != 4 || memcmp(magic, ELFMAG, 4)) {
		close(fd);
		return 0;
	}
	close(fd);
	if (elf_file_open(&f, path, true) ||
	    find_build_id(f.elf, id, NULL) != want.len ||
	    memcmp(id, want.id, want.len) || !has_section(f.elf, ".symtab") ||
	    !has_section(f.elf, ".debug_info")) {
		elf_file_close(&f);
		return 0;
	}
	plain = !has_section(f.elf, ".gnu_debugaltlink");
	elf_file_close(&f);
	if (!want.best || (plain && !want.best_plain)) {
		free(want.best);
		want.best = strdup(path);
		want.best_plain = plain;
	}
	return want.best_plain ? 1 : 0;
}

static int cmd_find_debug(int argc, char **argv)
{
	const char *hex;
	int first, rc, i;
	const struct hp_opt table[] = { { 0 } };

	rc = hp_cli_parse("find-debug", "BUILD-ID DIR...", table, argc, argv,
			  &first);
	if (rc >= 0)
		return rc;
	if (first > argc - 2)
		return hp_cli_usage_error("find-debug",
					  "expected BUILD-ID DIR...");
	hex = argv[first];
	want.len = strlen(hex) / 2;
	if (want.len == 0 || want.len > BUILD_ID_MAX ||
	    strlen(hex) != 2 * want.len || hp_unhex(want.id, want.len, hex))
		return hp_cli_usage_error("find-debug", "'%s': not a build-id",
					  hex);
	for (i = first + 1; i < argc && !want.best_plain; i++)
		if (nftw(argv[i], walk_debug, 32, FTW_PHYS) < 0)
			hp_error_rc(-errno, "'%s'", argv[i]);
	if (!want.best) {
		hp_error(-HP_E_NODEBUG,
			 "no ELF with build-id %s and debug information under "
			 "'%s'",
			 hex, argv[first + 1]);
		hp_hint("keep the build tree (dh_strip strips only "
			"debian/<package>/)");
		return HP_EXIT_ERROR;
	}
	printf("%s\n", want.best);
	free(want.best);
	return HP_EXIT_OK;
}

/* ---- pin: a debug file that answers to the shipped build-id ---- */

static int cmd_pin(int argc, char **argv)
{
	struct elf_file f = { .fd = -1 };
	uint8_t id[BUILD_ID_MAX], *data = NULL;
	const char *in, *hex, *out;
	size_t len, size = 0;
	off_t off = 0;
	int first, rc;

	rc = parse_operands("pin", "ELF BUILD-ID OUT", 3, argc, argv, &first);
	if (rc >= 0)
		return rc;
	in = argv[first];
	hex = argv[first + 1];
	out = argv[first + 2];
	if (elf_file_open(&f, in, false)) {
		elf_file_close(&f);
		return HP_EXIT_ERROR;
	}
	len = find_build_id(f.elf, id, &off);
	elf_file_close(&f);
	if (!len || strlen(hex) != 2 * len || hp_unhex(id, len, hex)) {
		hp_error(-HP_E_BADELF,
			 "'%s': its build-id note (%zu bytes) cannot hold '%s'",
			 in, len, hex);
		return HP_EXIT_ERROR;
	}
	rc = hp_read_file(in, OBJECT_MAX, &data, &size);
	if (rc) {
		hp_error_rc(rc, "'%s'", in);
		return HP_EXIT_ERROR;
	}
	HP_BUG_ON((size_t)off + len > size);
	memcpy(data + off, id, len);
	rc = hp_write_file(out, data, size, 0644, 0);
	free(data);
	if (rc) {
		hp_error_rc(rc, "'%s'", out);
		return HP_EXIT_ERROR;
	}
	return HP_EXIT_OK;
}

int main(int argc, char **argv)
{
	static const struct hp_cmd cmds[] = {
		{ "build-id", "print an ELF file's GNU build-id",
		  cmd_build_id },
		{ "same", "prove a rebuilt ELF is the shipped one", cmd_same },
		{ "objects",
		  "list the objects under TREE an ELF was linked from",
		  cmd_objects },
		{ "find-debug", "find the ELF with a build-id and its DWARF",
		  cmd_find_debug },
		{ "pin", "copy a debug file, its build-id replaced", cmd_pin },
		{ 0 },
	};

	hp_log_set_prog("hpdeb-elf");
	elf_version(EV_CURRENT);
	return hp_cli_dispatch("the ELF facts of a rebuilt Debian package, "
			       "for hpatch-deb",
			       cmds, argc, argv);
}
