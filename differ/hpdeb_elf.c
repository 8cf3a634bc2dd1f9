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
#include "differ/hpdeb.h"

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

int hpdeb_parse_operands(const char *cmd, const char *synopsis, int nr,
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

	rc = hpdeb_parse_operands("build-id", "ELF", 1, argc, argv, &first);
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

	rc = hpdeb_parse_operands("pin", "ELF BUILD-ID OUT", 3, argc, argv,
				  &first);
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
		  hpdeb_cmd_objects },
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
