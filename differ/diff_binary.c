/*
 * The old linked binary, exactly as shipped: its build-id pins the patch,
 * its symbol table resolves every reference from patch code to the running
 * program (statics disambiguated by the STT_FILE group that holds them), and
 * its dynamic relocations name the GOT slots the process binds at run time.
 */
#include "differ/differ_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int elf_err(const char *path, const char *what)
{
	return hp_error(-HP_E_BADELF, "'%s': %s: %s", path, what,
			elf_errmsg(-1));
}

static int cmp_bsym(const void *a, const void *b)
{
	const struct hp_bsym *x = a, *y = b;

	return strcmp(x->name, y->name);
}

static int cmp_u64(const void *a, const void *b)
{
	const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int cmp_bslot(const void *a, const void *b)
{
	const struct hp_bslot *x = a, *y = b;

	return strcmp(x->name, y->name);
}

/* Names are stored as offsets first: the buffer moves while it grows. */
static int add_name(struct hp_buf *names, const char *name, size_t *off)
{
	size_t len = strcspn(name, "@"); /* "stdout@GLIBC_2.2.5" -> "stdout" */
	static const char nul;
	int rc;

	*off = names->len;
	rc = hp_buf_append(names, name, len);
	if (!rc)
		rc = hp_buf_append(names, &nul, 1);
	return rc;
}

/*
 * Whether the binary is an executable and where its thread-locals live:
 * on x86-64 the executable's TLS block ends at the thread pointer, at
 * tls_offset = roundup(memsz - firstbyte, align) + firstbyte below it
 * (glibc's _dl_determine_tlsoffset; ld computes local-exec offsets alike).
 */
static void read_segments(struct hp_binary *b, unsigned int e_type)
{
	size_t n = 0;

	b->is_exec = e_type == ET_EXEC;
	if (elf_getphdrnum(b->elf, &n))
		return;
	for (size_t i = 0; i < n; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(b->elf, (int)i, &ph))
			continue;
		if (ph.p_type == PT_INTERP)
			b->is_exec = true;
		if (ph.p_type == PT_TLS) {
			const uint64_t align = ph.p_align ? ph.p_align : 1;
			const uint64_t first =
				(-(ph.p_vaddr & (align - 1))) & (align - 1);

			b->has_tls = true;
			b->tls_offset =
				(int64_t)(HP_ALIGN_UP(ph.p_memsz - first,
						      align) +
					  first);
		}
	}
}

static int read_build_id(struct hp_binary *b)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(b->elf, scn))) {
		GElf_Shdr sh;
		GElf_Nhdr nh;
		Elf_Data *d = NULL;
		size_t off = 0, name_off, desc_off;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE)
			continue;
		d = elf_getdata(scn, NULL);
		while (d && (off = gelf_getnote(d, off, &nh, &name_off,
						&desc_off)) > 0) {
			if (nh.n_type != NT_GNU_BUILD_ID || nh.n_namesz != 4 ||
			    memcmp((char *)d->d_buf + name_off, "GNU", 4))
				continue;
			if (nh.n_descsz == 0 || nh.n_descsz > HP_BUILD_ID_MAX)
				return hp_error(-HP_E_BADELF,
						"'%s': build-id of %u bytes",
						b->path, (unsigned)nh.n_descsz);
			memcpy(b->build_id, (char *)d->d_buf + desc_off,
			       nh.n_descsz);
			b->build_id_len = nh.n_descsz;
			return 0;
		}
	}
	hp_error(-HP_E_BADELF, "'%s': no GNU build-id note", b->path);
	hp_hint("link the release with '-Wl,--build-id'");
	return -HP_E_BADELF;
}

static int read_symtab(struct hp_binary *b, Elf_Scn *scn, GElf_Shdr *sh)
{
	Elf_Data *d = elf_getdata(scn, NULL);
	size_t n = sh->sh_entsize ? sh->sh_size / sh->sh_entsize : 0;
	size_t *name_offs = NULL, *file_offs = NULL;
	size_t cur_file = (size_t)-1;
	bool anon_file = false; /* ld's group of globals it made local */
	int rc = 0;

	if (!d)
		return elf_err(b->path, "cannot read the symbol table");
	b->syms = calloc(n ? n : 1, sizeof(*b->syms));
	name_offs = calloc(n ? n : 1, sizeof(*name_offs));
	file_offs = calloc(n ? n : 1, sizeof(*file_offs));
	if (!b->syms || !name_offs || !file_offs) {
		rc = -ENOMEM;
		goto out_free;
	}
	for (size_t i = 0; i < n; i++) {
		const char *name = NULL;
		GElf_Sym st;
		unsigned char type;

		if (!gelf_getsym(d, (int)i, &st)) {
			rc = elf_err(b->path, "cannot read a symbol");
			goto out_free;
		}
		name = elf_strptr(b->elf, sh->sh_link, st.st_name);
		type = GELF_ST_TYPE(st.st_info);
		if (type == STT_FILE) {
			rc = add_name(&b->names, name ? name : "", &cur_file);
			if (rc)
				goto out_free;
			anon_file = !name || !*name;
			continue;
		}
		if (!name || !*name || st.st_shndx == SHN_UNDEF ||
		    type == STT_SECTION)
			continue;
		rc = add_name(&b->names, name, &name_offs[b->nr_syms]);
		if (rc)
			goto out_free;
		b->syms[b->nr_syms] = (struct hp_bsym){
			.value = st.st_value,
			.size = st.st_size,
			.type = type,
			.bind = GELF_ST_BIND(st.st_info),
			.localised = GELF_ST_BIND(st.st_info) == STB_LOCAL &&
				     (GELF_ST_VISIBILITY(st.st_other) !=
					      STV_DEFAULT ||
				      anon_file),
		};
		file_offs[b->nr_syms] = b->syms[b->nr_syms].bind == STB_LOCAL
						? cur_file
						: (size_t)-1;
		b->nr_syms++;
	}
	for (size_t i = 0; i < b->nr_syms; i++) {
		b->syms[i].name = (char *)b->names.data + name_offs[i];
		if (file_offs[i] != (size_t)-1)
			b->syms[i].file = (char *)b->names.data + file_offs[i];
	}
	b->starts = calloc(b->nr_syms ? b->nr_syms : 1, sizeof(*b->starts));
	if (!b->starts) {
		rc = -ENOMEM;
		goto out_free;
	}
	for (size_t i = 0; i < b->nr_syms; i++)
		if (b->syms[i].type == STT_FUNC ||
		    b->syms[i].type == STT_OBJECT ||
		    b->syms[i].type == STT_NOTYPE)
			b->starts[b->nr_starts++] = b->syms[i].value;
	qsort(b->starts, b->nr_starts, sizeof(*b->starts), cmp_u64);
	qsort(b->syms, b->nr_syms, sizeof(*b->syms), cmp_bsym);
out_free:
	free(name_offs);
	free(file_offs);
	return rc;
}

static int add_tls(struct hp_binary *b, Elf_Data *symd, size_t strndx,
		   const GElf_Rela *rela)
{
	struct hp_btls *t = realloc(b->tls, (b->nr_tls + 1) * sizeof(*t));
	const size_t sym = GELF_R_SYM(rela->r_info);
	const char *name = NULL;
	GElf_Sym st;

	if (!t)
		return -ENOMEM;
	b->tls = t;
	if (sym && symd && gelf_getsym(symd, (int)sym, &st))
		name = elf_strptr(b->elf, strndx, st.st_name);
	b->tls[b->nr_tls++] = (struct hp_btls){
		.name = name && *name ? name : NULL,
		.type = (uint32_t)GELF_R_TYPE(rela->r_info),
		.slot = rela->r_offset,
		.addend = rela->r_addend,
	};
	return 0;
}

/* GOT slots from .rela.dyn (GLOB_DAT) and .rela.plt (JUMP_SLOT), and the
 * entries of dynamic TLS (DTPMOD64, TPOFF64). */
static int read_slots(struct hp_binary *b, Elf_Scn *scn, GElf_Shdr *sh)
{
	Elf_Data *d = elf_getdata(scn, NULL);
	Elf_Scn *symscn = elf_getscn(b->elf, sh->sh_link);
	GElf_Shdr symsh;
	Elf_Data *symd = NULL;
	size_t n = sh->sh_entsize ? sh->sh_size / sh->sh_entsize : 0;
	struct hp_bslot *slots = NULL;
	int rc;

	if (!d || !symscn || !gelf_getshdr(symscn, &symsh))
		return elf_err(b->path, "cannot read dynamic relocations");
	symd = elf_getdata(symscn, NULL);
	slots = realloc(b->slots, (b->nr_slots + n + 1) * sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	b->slots = slots;
	for (size_t i = 0; i < n; i++) {
		GElf_Rela rela;
		GElf_Sym st;
		uint32_t type;
		const char *name = NULL;

		if (!gelf_getrela(d, (int)i, &rela))
			return elf_err(b->path, "cannot read a relocation");
		type = GELF_R_TYPE(rela.r_info);
		if (type == R_X86_64_DTPMOD64 || type == R_X86_64_TPOFF64) {
			rc = add_tls(b, symd, symsh.sh_link, &rela);
			if (rc)
				return rc;
			continue;
		}
		if (type != R_X86_64_GLOB_DAT && type != R_X86_64_JUMP_SLOT)
			continue;
		if (!symd ||
		    !gelf_getsym(symd, (int)GELF_R_SYM(rela.r_info), &st))
			continue;
		name = elf_strptr(b->elf, symsh.sh_link, st.st_name);
		if (!name || !*name)
			continue;
		/* Names point into libelf's string table: valid until elf_end. */
		b->slots[b->nr_slots++] = (struct hp_bslot){
			.name = name,
			.slot = rela.r_offset,
		};
	}
	return 0;
}

static const char *debug_root; /* hp_diff_set_debug_root */

void hp_diff_set_debug_root(const char *dir)
{
	debug_root = dir;
}

/*
 * A stripped binary's symbols from its separate debug file: the one given,
 * else the one the build-id names under the debug root (default
 * /usr/lib/debug), as gdb finds them. Its build-id must match. Bytes and
 * GOT slots still come from the shipped binary.
 */
static int open_debug_file(struct hp_binary *b, const char *given)
{
	const char *root = debug_root;
	char hex[2 * HP_BUILD_ID_MAX + 1], found[512];
	struct hp_binary probe = { .fd = -1 };
	Elf_Scn *scn = NULL;
	int rc;

	hp_hex(hex, b->build_id, b->build_id_len);
	if (!given) {
		snprintf(found, sizeof(found), "%s/.build-id/%.2s/%s.debug",
			 root && *root ? root : "/usr/lib/debug", hex, hex + 2);
		if (access(found, R_OK)) {
			hp_error(-HP_E_NOSYM,
				 "'%s': no symbol table (stripped), and no "
				 "debug file at '%s'",
				 b->path, found);
			hp_hint("give the unstripped binary, or its debug "
				"file with --debug-file");
			return -HP_E_NOSYM;
		}
		given = found;
	}
	b->debug_path = strdup(given);
	if (!b->debug_path)
		return -ENOMEM;
	b->debug_fd = open(given, O_RDONLY | O_CLOEXEC);
	if (b->debug_fd < 0)
		return hp_error_rc(-errno, "'%s'", given);
	b->debug_elf = elf_begin(b->debug_fd, ELF_C_READ_MMAP, NULL);
	if (!b->debug_elf || elf_kind(b->debug_elf) != ELF_K_ELF)
		return elf_err(given, "not an ELF file");
	probe.path = b->debug_path;
	probe.elf = b->debug_elf;
	rc = read_build_id(&probe);
	if (rc)
		return rc;
	if (probe.build_id_len != b->build_id_len ||
	    memcmp(probe.build_id, b->build_id, b->build_id_len))
		return hp_error(-HP_E_MISMATCH,
				"'%s': build-id differs from '%s' (%s): not "
				"its debug file",
				given, b->path, hex);
	while ((scn = elf_nextscn(b->debug_elf, scn))) {
		GElf_Shdr sh;

		if (gelf_getshdr(scn, &sh) && sh.sh_type == SHT_SYMTAB) {
			/* read_symtab reads names through b->elf */
			Elf *main_elf = b->elf;

			b->elf = b->debug_elf;
			rc = read_symtab(b, scn, &sh);
			b->elf = main_elf;
			return rc;
		}
	}
	return hp_error(-HP_E_NOSYM, "'%s': no symbol table in debug file",
			given);
}

int hp_binary_open(const char *path, const char *debug_file,
		   struct hp_binary **out)
{
	struct hp_binary *b = NULL;
	Elf_Scn *scn = NULL;
	bool have_symtab = false;
	GElf_Ehdr eh;
	int rc;

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->fd = -1;
	b->debug_fd = -1;
	b->path = strdup(path);
	if (!b->path) {
		rc = -ENOMEM;
		goto out_free;
	}
	b->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (b->fd < 0) {
		rc = hp_error_rc(-errno, "'%s'", path);
		goto out_free;
	}
	b->elf = elf_begin(b->fd, ELF_C_READ_MMAP, NULL);
	if (!b->elf || elf_kind(b->elf) != ELF_K_ELF ||
	    !gelf_getehdr(b->elf, &eh)) {
		rc = elf_err(path, "not an ELF file");
		goto out_free;
	}
	if ((eh.e_type != ET_EXEC && eh.e_type != ET_DYN) ||
	    eh.e_machine != EM_X86_64) {
		rc = hp_error(-HP_E_BADELF,
			      "'%s': not an x86-64 executable or shared "
			      "library",
			      path);
		goto out_free;
	}
	b->is_pie = eh.e_type == ET_DYN;
	read_segments(b, eh.e_type);
	rc = read_build_id(b);
	if (rc)
		goto out_free;
	while ((scn = elf_nextscn(b->elf, scn))) {
		GElf_Shdr sh;

		if (!gelf_getshdr(scn, &sh))
			continue;
		if (sh.sh_type == SHT_SYMTAB) {
			rc = read_symtab(b, scn, &sh);
			have_symtab = true;
		} else if (sh.sh_type == SHT_RELA &&
			   (sh.sh_flags & SHF_ALLOC)) {
			rc = read_slots(b, scn, &sh);
		}
		if (rc)
			goto out_free;
	}
	if (!have_symtab) {
		rc = open_debug_file(b, debug_file);
		if (rc)
			goto out_free;
	}
	if (b->nr_slots)
		qsort(b->slots, b->nr_slots, sizeof(*b->slots), cmp_bslot);
	*out = b;
	return 0;
out_free:
	hp_binary_free(b);
	return rc;
}

void hp_binary_free(struct hp_binary *b)
{
	if (!b)
		return;
	free(b->syms);
	free(b->slots);
	free(b->tls);
	free(b->starts);
	if (b->debug_elf)
		elf_end(b->debug_elf);
	if (b->debug_fd >= 0)
		close(b->debug_fd);
	free(b->debug_path);
	hp_buf_release(&b->names);
	if (b->elf)
		elf_end(b->elf);
	if (b->fd >= 0)
		close(b->fd);
	free(b->path);
	free(b);
}

const struct hp_bsym *hp_binary_find_sym(const struct hp_binary *b,
					 const char *name, const char *file,
					 bool local, bool *ambiguous)
{
	const struct hp_bsym key = { .name = name };
	const struct hp_bsym *hit = NULL, *first = NULL, *found = NULL;
	size_t nr_found = 0;

	*ambiguous = false;
	hit = bsearch(&key, b->syms, b->nr_syms, sizeof(*b->syms), cmp_bsym);
	if (!hit)
		return NULL;
	first = hit;
	while (first > b->syms && !strcmp(first[-1].name, name))
		first--;
	for (const struct hp_bsym *s = first;
	     s < b->syms + b->nr_syms && !strcmp(s->name, name); s++) {
		/* A hidden global is local in the linked output. */
		if (local ? s->bind != STB_LOCAL
			  : s->bind == STB_LOCAL && !s->localised)
			continue;
		if (local && file && (!s->file || strcmp(s->file, file)))
			continue;
		if (found && found->value == s->value)
			continue; /* the same symbol listed twice (aliases) */
		found = s;
		nr_found++;
	}
	if (nr_found > 1) {
		*ambiguous = true;
		return NULL;
	}
	return found;
}

uint64_t hp_binary_find_slot(const struct hp_binary *b, const char *name)
{
	const struct hp_bslot key = { .name = name };
	const struct hp_bslot *hit =
		b->nr_slots ? bsearch(&key, b->slots, b->nr_slots,
				      sizeof(*b->slots), cmp_bslot)
			    : NULL;

	return hit ? hit->slot : 0;
}

uint64_t hp_binary_find_tls(const struct hp_binary *b, uint32_t type,
			    const char *name, uint64_t off)
{
	for (int by_name = 1; by_name >= 0; by_name--) {
		for (size_t i = 0; i < b->nr_tls; i++) {
			const struct hp_btls *t = &b->tls[i];
			uint64_t word = 0;

			if (t->type != type || !t->name != !by_name)
				continue;
			if (by_name) {
				if (name && !strcmp(t->name, name))
					return t->slot;
				continue;
			}
			/* File-local: the offset is the TPOFF64 addend, or
			 * the pair's second word as the linker wrote it. */
			if (type == R_X86_64_TPOFF64
				    ? (uint64_t)t->addend == off
				    : !hp_binary_read(b, t->slot + 8, &word,
						      sizeof(word)) &&
					      le64toh(word) == off)
				return t->slot;
		}
	}
	return 0;
}

uint64_t hp_binary_room(const struct hp_binary *b, uint64_t vaddr)
{
	uint64_t end = 0;
	Elf_Scn *scn = NULL;
	size_t lo = 0, hi = b->nr_starts;

	while ((scn = elf_nextscn(b->elf, scn))) {
		GElf_Shdr sh;

		if (gelf_getshdr(scn, &sh) && (sh.sh_flags & SHF_ALLOC) &&
		    vaddr >= sh.sh_addr && vaddr < sh.sh_addr + sh.sh_size)
			end = sh.sh_addr + sh.sh_size;
	}
	/* First start above vaddr. */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (b->starts[mid] <= vaddr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < b->nr_starts && b->starts[lo] < end)
		end = b->starts[lo];
	return end > vaddr ? end - vaddr : 0;
}

int hp_binary_read(const struct hp_binary *b, uint64_t vaddr, void *buf,
		   size_t len)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(b->elf, scn))) {
		GElf_Shdr sh;
		Elf_Data *d = NULL;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_PROGBITS ||
		    !(sh.sh_flags & SHF_ALLOC))
			continue;
		if (vaddr < sh.sh_addr || vaddr + len > sh.sh_addr + sh.sh_size)
			continue;
		d = elf_getdata(scn, NULL);
		if (!d || d->d_size != sh.sh_size)
			break;
		memcpy(buf, (const uint8_t *)d->d_buf + (vaddr - sh.sh_addr),
		       len);
		return 0;
	}
	return hp_error(-HP_E_BADELF, "'%s': no section holds 0x%llx+%zu",
			b->path, (unsigned long long)vaddr, len);
}
