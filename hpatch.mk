# hpatch.mk: a `hotpatch` target for a project's Makefile.
#
# Build each release with -g (function sections optional) and keep its
# object tree and the binary as shipped; then, in the Makefile:
#
#   HPATCH_OLD    = build-1.4.2          # old object tree (or one .o)
#   HPATCH_NEW    = build-1.4.2-fix      # new object tree, same layout
#   HPATCH_BINARY = build-1.4.2/server   # the old binary, as shipped
#   HPATCH_KEY    = release.key          # signing key (omit: unsigned)
#   HPATCH_OUT    = CVE-2026-1234.hpatch # default: hotpatch.hpatch
#   include hpatch.mk
#
# `make hotpatch` runs hpdiff: it prints what changed and why, and fails
# (hpdiff exits 1) with every refusal listed when the change cannot be
# hot-patched safely; exit 3 means nothing changed. HPATCH_FLAGS passes
# more options (--json, --sequence N, --expires T, -d TEXT, --debug-file),
# and further modules of the same patch, e.g. a library the program loads:
#   HPATCH_FLAGS = --and --old lib-old --new lib-new --binary lib-old/libx.so

HPDIFF ?= hpdiff
HPATCH_OUT ?= hotpatch.hpatch
HPATCH_FLAGS ?=

.PHONY: hotpatch
hotpatch:
	$(if $(HPATCH_OLD),,$(error hpatch.mk: set HPATCH_OLD))
	$(if $(HPATCH_NEW),,$(error hpatch.mk: set HPATCH_NEW))
	$(if $(HPATCH_BINARY),,$(error hpatch.mk: set HPATCH_BINARY))
	$(HPDIFF) --old $(HPATCH_OLD) --new $(HPATCH_NEW) \
		--binary $(HPATCH_BINARY) $(if $(HPATCH_KEY),--key $(HPATCH_KEY)) \
		-o $(HPATCH_OUT) $(HPATCH_FLAGS)
