#!/usr/bin/env bash
# `cmake --install` into a DESTDIR with prefix /usr (umask 077, so every
# mode is the install rule's): the tools in sbin and bin, the empty trust
# directory at 0755, man pages `man` finds, completions, hpatch.mk and the
# CMake package. Then the installed build-side pieces used as a project
# would use them: find_package(hpatch) + hpatch_add_hotpatch in a tiny
# out-of-tree CMake project, and hpatch.mk included by a Makefile; each
# writes a signed patch of the demo that the installed hpatch verifies.
. "$(dirname "$0")/../e2e/lib.bash"
D=$T/root
trust=$(sed -n 's/^HP_TRUST_DIR:PATH=//p' "$HP_BUILD/CMakeCache.txt")
expect_exit 0 "cmake --install (DESTDIR, prefix /usr)" \
	bash -c 'umask 077; DESTDIR="$1" cmake --install "$2" --prefix /usr' - "$D" "$HP_BUILD"

mode() { stat -c %a "$1"; }
for f in sbin/hpatch bin/hpdiff bin/hpsign; do
	check "$f: installed, 755" test "$(mode "$D/usr/$f")" = 755
done
check "hpatch is not in bin (an administrator's tool)" test ! -e "$D/usr/bin/hpatch"
check "trust dir $trust: 755" test "$(mode "$D$trust")" = 755
check "its parent: 755" test "$(mode "$(dirname "$D$trust")")" = 755
check "trust dir: empty" test -z "$(ls -A "$D$trust")"
check "hpatch's default --trust is the installed one" \
	grep -qF "(default $trust)" <("$D/usr/sbin/hpatch" apply --help)
if [ -d "$HP_BUILD/man" ]; then
	for p in hpdiff.1 hpsign.1 hpatch.8 hpatch-format.5; do
		check "man page $p: 644" test "$(mode "$D/usr/share/man/man${p##*.}/$p")" = 644
	done
	check "man -w hpatch finds the installed page" \
		test "$(MANPATH=$D/usr/share/man man -w hpatch)" = "$D/usr/share/man/man8/hpatch.8"
else # -DHP_MAN=OFF
	check "no man pages" test ! -e "$D/usr/share/man"
fi
for c in hpatch hpdiff hpsign; do
	check "completion for $c" cmp -s "$HP_SRC/completion/hpatch.bash" \
		"$D/usr/share/bash-completion/completions/$c"
done
check "hpatch.mk" cmp -s "$HP_SRC/hpatch.mk" "$D/usr/share/hpatch/hpatch.mk"
check "CMake package" test -f "$D/usr/share/cmake/hpatch/hpatchConfig.cmake"

make_key k
OLD=$HP_BUILD/testdata/CMakeFiles/demo-v1.objs.dir
NEW=$HP_BUILD/testdata/CMakeFiles/demo-v2.objs.dir
BIN=$HP_BUILD/testdata/demo-v1

# A project of its own, finding hpatch through CMAKE_PREFIX_PATH only.
mkdir "$T/proj"
cat >"$T/proj/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.20)
project(consumer NONE)
find_package(hpatch 0.1 REQUIRED)
get_target_property(hpdiff hpatch::hpdiff IMPORTED_LOCATION)
message(STATUS "hpdiff: ${hpdiff}")
hpatch_add_hotpatch(hotpatch OLD ${OLD} NEW ${NEW} BINARY ${BIN}
	OUTPUT ${CMAKE_BINARY_DIR}/fix.hpatch KEY ${KEY} FLAGS -d "from cmake")
CMAKE
expect_exit 0 "find_package(hpatch) in an out-of-tree project" \
	cmake -S "$T/proj" -B "$T/proj/build" -DCMAKE_PREFIX_PATH="$D/usr" \
	-DOLD="$OLD" -DNEW="$NEW" -DBIN="$BIN" -DKEY="$T/k.key"
check "hpatch::hpdiff is the installed hpdiff" \
	grep -qF -- "-- hpdiff: $D/usr/bin/hpdiff" "$T/last.out"
expect_exit 0 "hpatch_add_hotpatch target builds" \
	cmake --build "$T/proj/build" --target hotpatch
expect_exit 0 "the installed hpatch verifies its patch" \
	"$D/usr/sbin/hpatch" inspect --trust "$T/trust" "$T/proj/build/fix.hpatch"
check "it replaces format_quote" grep -q format_quote "$T/last.out"
check "with the FLAGS given" grep -q "from cmake" "$T/last.out"
sed -i 's/find_package(hpatch 0.1 REQUIRED)/find_package(hpatch 99 REQUIRED)/' "$T/proj/CMakeLists.txt"
expect_exit 1 "find_package(hpatch 99) is refused" \
	cmake -S "$T/proj" -B "$T/proj/build99" -DCMAKE_PREFIX_PATH="$D/usr"

# A Makefile including the installed hpatch.mk.
mkdir "$T/mk"
printf 'include %s\n' "$D/usr/share/hpatch/hpatch.mk" >"$T/mk/Makefile"
expect_exit 0 "make hotpatch with the installed hpatch.mk" \
	make -s -C "$T/mk" hotpatch HPDIFF="$D/usr/bin/hpdiff" HPATCH_OLD="$OLD" \
	HPATCH_NEW="$NEW" HPATCH_BINARY="$BIN" HPATCH_KEY="$T/k.key" HPATCH_OUT=fix.hpatch
expect_exit 0 "the installed hpatch verifies it" \
	"$D/usr/sbin/hpatch" inspect --trust "$T/trust" "$T/mk/fix.hpatch"
finish
