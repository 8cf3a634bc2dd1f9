/*
 * Domain error codes shared by every component, and their text. Codes are
 * returned negated (-HP_E_*) beside negated errno values; both kinds are
 * turned into text by hp_strerror(). The list is the single source.
 */
#ifndef HP_ERR_H
#define HP_ERR_H

#include <assert.h>

#define HP_E_BASE 4096

/* X(name, text): keep the text short, lowercase, no trailing period. */
#define HP_ERR_LIST(X)                                                         \
	X(HP_E_BADELF, "malformed or unsupported ELF file")                    \
	X(HP_E_NODEBUG, "no usable DWARF debug information")                   \
	X(HP_E_NOSECTIONS, "object not built with -ffunction-sections")        \
	X(HP_E_NOSYM, "symbol not found")                                      \
	X(HP_E_AMBIGSYM, "symbol is ambiguous")                                \
	X(HP_E_UNSUPPORTED_RELOC, "unsupported relocation type")               \
	X(HP_E_REFUSED, "change cannot be patched safely")                     \
	X(HP_E_NOCHANGE, "no changed functions")                               \
	X(HP_E_BADFORMAT, "malformed patch file")                              \
	X(HP_E_BADVERSION, "unsupported patch file version")                   \
	X(HP_E_TOOBIG, "size exceeds the format's limit")                      \
	X(HP_E_UNSIGNED, "patch file is not signed")                           \
	X(HP_E_BADSIG, "signature does not verify")                            \
	X(HP_E_UNTRUSTED, "signing key is not trusted")                        \
	X(HP_E_BADKEY, "malformed key file")                                   \
	X(HP_E_KEYPERM, "secret key file is readable by others")               \
	X(HP_E_EXISTS, "file already exists")                                  \
	X(HP_E_EXPIRED, "patch has expired")                                   \
	X(HP_E_DOWNGRADE, "sequence number is lower than one already applied") \
	X(HP_E_NOTARGET, "no module with the patch's build-id")                \
	X(HP_E_MISMATCH, "target bytes differ from what the patch expects")    \
	X(HP_E_NOHOLE, "no free address range near the module")                \
	X(HP_E_RANGE, "relocation target out of range")                        \
	X(HP_E_BUSY, "function is in use by a thread")                         \
	X(HP_E_APPLIED, "patch is already applied")                            \
	X(HP_E_NOTAPPLIED, "no patch is applied")                              \
	X(HP_E_INJECT, "remote system call failed")                            \
	X(HP_E_GONE, "target process exited")                                  \
	X(HP_E_FAULT, "fault injected for testing")                            \
	X(HP_E_CHANGED_DATA, "initialised data changed")                       \
	X(HP_E_TOO_SHORT, "function is shorter than the 5-byte jump")          \
	X(HP_E_UNSUPPORTED, "construct not supported by hot-patching")         \
	X(HP_E_REMOVED, "function removed but still referenced")               \
	X(HP_E_LAYOUT, "data layout changed")                                  \
	X(HP_E_SIGNATURE, "function signature changed")                        \
	X(HP_E_UNRELATED, "new build has no function in common with the old")  \
	X(HP_E_FOREIGN_BINARY, "binary was not linked from the old objects")   \
	X(HP_E_INSECURE, "file or directory others could write")               \
	X(HP_E_SECCOMP, "a seccomp filter forbids what hpatch must inject")    \
	X(HP_E_EXEC, "the process executed a new program meanwhile")           \
	X(HP_E_VTABLE, "virtual methods of a class changed")                   \
	X(HP_E_WORKER, "the hpatch worker patching it died")                   \
	X(HP_E_LOADING, "its dynamic linker is loading objects")               \
	X(HP_E_FALLBACK, "the policy's fallback failed")

enum hp_err {
	HP_E_FIRST_ = HP_E_BASE - 1,
#define HP_ERR_ENUM(name, text) name,
	HP_ERR_LIST(HP_ERR_ENUM)
#undef HP_ERR_ENUM
		HP_E_LAST_
};

#define HP_ERR_COUNT (HP_E_LAST_ - HP_E_BASE)

/*
 * hp_strerror() - text for a return value: 0, -errno or -HP_E_*.
 * Return: a static string, never NULL. Thread-safe.
 */
const char *hp_strerror(int rc);

/* hp_err_name() - "HP_E_BUSY" for -HP_E_BUSY, "ENOENT" style is not kept. */
const char *hp_err_name(int rc);

#endif
