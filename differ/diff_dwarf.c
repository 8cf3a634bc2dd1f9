/*
 * DWARF for the report: the source file and line of each included function
 * (DW_TAG_subprogram DW_AT_decl_file/decl_line in the new object). Best
 * effort: an object without DWARF leaves the fields empty.
 */
#include "differ/differ_int.h"

#include <dwarf.h>
#include <fcntl.h>
#include <libdwarf.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* @base: DWARF 5 numbers files from 0, DWARF 4 and older from 1. */
static void note_subprogram(Dwarf_Die die, char **files, Dwarf_Signed nr_files,
			    Dwarf_Unsigned base, struct hp_diff_func *funcs,
			    uint32_t nr_funcs)
{
	Dwarf_Unsigned file = 0, line = 0;
	Dwarf_Attribute attr = NULL;
	Dwarf_Error err = NULL;
	char *name = NULL;

	if (dwarf_diename(die, &name, &err) != DW_DLV_OK)
		return;
	if (dwarf_attr(die, DW_AT_decl_file, &attr, &err) == DW_DLV_OK) {
		dwarf_formudata(attr, &file, &err);
		dwarf_dealloc_attribute(attr);
	}
	if (dwarf_attr(die, DW_AT_decl_line, &attr, &err) == DW_DLV_OK) {
		dwarf_formudata(attr, &line, &err);
		dwarf_dealloc_attribute(attr);
	}
	for (uint32_t i = 0; i < nr_funcs; i++) {
		struct hp_diff_func *f = &funcs[i];

		if (f->src_file || !hp_dwarf_names(name, f->name))
			continue;
		if (file >= base && file - base < (Dwarf_Unsigned)nr_files)
			f->src_file = strdup(files[file - base]);
		f->src_line = (unsigned int)line;
	}
}

/*
 * gcc names the parts and copies it makes of a function f "f.part.0",
 * "f.isra.0", "f.constprop.0" or "f.cold", and DWARF describes them only
 * as f (DW_AT_abstract_origin): a symbol's source name ends at the first
 * '.', which no C identifier contains.
 */
bool hp_dwarf_names(const char *name, const char *sym)
{
	const size_t len = hp_origin_len(sym);

	return !strncmp(name, sym, len) && !name[len];
}

void hp_dwarf_locate(const char *obj_path, struct hp_diff_func *funcs,
		     uint32_t nr_funcs)
{
	Dwarf_Debug dbg = NULL;
	Dwarf_Error err = NULL;
	Dwarf_Unsigned next = 0;
	Dwarf_Half cu_type = 0;
	int fd = open(obj_path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	if (dwarf_init_b(fd, DW_DLC_READ, DW_GROUPNUMBER_ANY, NULL, NULL, &dbg,
			 &err) != DW_DLV_OK) {
		close(fd);
		return;
	}
	Dwarf_Half version = 0;

	while (dwarf_next_cu_header_d(dbg, 1, NULL, &version, NULL, NULL, NULL,
				      NULL, NULL, NULL, &next, &cu_type,
				      &err) == DW_DLV_OK) {
		Dwarf_Die cu = NULL, die = NULL, sib = NULL;
		char **files = NULL;
		Dwarf_Signed nr_files = 0;

		if (dwarf_siblingof_b(dbg, NULL, 1, &cu, &err) != DW_DLV_OK)
			continue;
		if (dwarf_srcfiles(cu, &files, &nr_files, &err) != DW_DLV_OK)
			nr_files = 0;
		if (dwarf_child(cu, &die, &err) == DW_DLV_OK) {
			for (;;) {
				Dwarf_Half tag = 0;

				if (dwarf_tag(die, &tag, &err) == DW_DLV_OK &&
				    tag == DW_TAG_subprogram)
					note_subprogram(die, files, nr_files,
							version >= 5 ? 0 : 1,
							funcs, nr_funcs);
				if (dwarf_siblingof_b(dbg, die, 1, &sib,
						      &err) != DW_DLV_OK)
					break;
				dwarf_dealloc_die(die);
				die = sib;
			}
			dwarf_dealloc_die(die);
		}
		for (Dwarf_Signed i = 0; i < nr_files; i++)
			dwarf_dealloc(dbg, files[i], DW_DLA_STRING);
		if (files)
			dwarf_dealloc(dbg, files, DW_DLA_LIST);
		dwarf_dealloc_die(cu);
	}
	dwarf_finish(dbg, &err);
	close(fd);
}
