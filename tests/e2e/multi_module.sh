#!/usr/bin/env bash
# One patch for a program and the library it loads (hpdiff --and): both
# modules switch in one stop, a fault in either leaves both as they were,
# and one revert takes both back. A process that maps only the library
# gets the library's part.
. "$(dirname "$0")/lib.bash"
require_ptrace

O=$HP_BUILD/testdata/CMakeFiles
make_key k
expect_exit 0 "hpdiff builds one patch for two modules" \
	"$HPDIFF" --old "$O/greet_host-v1.objs.dir" --new "$O/greet_host-v2.objs.dir" \
	--binary "$HP_BUILD/testdata/greet_host" \
	--and --old "$O/greet-v1.objs.dir" --new "$O/greet-v2.objs.dir" \
	--binary "$HP_BUILD/testdata/libgreet-v1.so" \
	--key "$T/k.key" -o "$T/both.hpatch" --json
check "report names each function's module" \
	grep -q '"name":"answer","module":"greet_host"' "$T/last.out"
check "... and the library's" \
	grep -q '"name":"greet_reply","module":"libgreet-v1.so"' "$T/last.out"
"$HPATCH" inspect --trust "$T/trust" --json "$T/both.hpatch" >"$T/inspect.json"
check "inspect lists two modules" \
	test "$(grep -o '"build_id":' "$T/inspect.json" | wc -l)" -eq 2

start_target "$HP_BUILD/testdata/greet_host" "$T/host.log"
pid=$TARGET_PID
open_conn 3 "$TARGET_PORT"
n=1
check "v1 answers" test "$(ask 3 ann)" = "hello ann (lib v1, call $n, style 1)"

# A fault at the second module's mmap or write, or after some jumps were
# written: nothing of either module may stay.
for step in mmap:2 write:2 jump jump:2; do
	cp "/proc/$pid/maps" "$T/maps.before"
	expect_exit 1 "apply fails at '$step'" \
		env HPATCH_FAULT=$step "$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/both.hpatch"
	check "'$step': error names the step" grep -q "fault injected at step" "$T/last.err"
	cat "/proc/$pid/maps" >"$T/maps.after" # cmp trusts st_size, 0 in /proc
	check "'$step': memory map unchanged" cmp -s "$T/maps.after" "$T/maps.before"
	n=$((n + 1))
	check "'$step': program and library still v1" \
		test "$(ask 3 bo)" = "hello bo (lib v1, call $n, style 1)"
done

expect_exit 0 "apply both" "$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/both.hpatch"
check "result names both modules" grep -q "greet_host,.*libgreet-v1.so" "$T/last.out"
n=$((n + 1))
check "program and library answer v2, counter continues" \
	test "$(ask 3 cy)" = "HELLO cy (lib v2, call $n, style 1) [host v2]"
"$HPATCH" status -p "$pid" --json >"$T/status.json"
check "status lists a region per module" \
	test "$(grep -o '"state":"active"' "$T/status.json" | wc -l)" -eq 2
expect_exit 3 "the same patch again: already applied" \
	"$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/both.hpatch"

expect_exit 1 "revert fails at the second jump" \
	env HPATCH_FAULT=unjump:2 "$HPATCH" revert -p "$pid"
n=$((n + 1))
check "still fully v2" test "$(ask 3 di)" = "HELLO di (lib v2, call $n, style 1) [host v2]"
expect_exit 0 "one revert takes both back" "$HPATCH" revert -p "$pid"
n=$((n + 1))
check "program and library v1 again" \
	test "$(ask 3 ed)" = "hello ed (lib v1, call $n, style 1)"
expect_exit 3 "nothing left to revert" "$HPATCH" revert -p "$pid"
exec 3>&-

# A process that maps only the library: it gets the library's part.
cat >"$T/only_lib.c" <<'C'
#include <stdio.h>
#include <unistd.h>
int greet_reply(char *buf, size_t cap, const char *name);
int main(void)
{
	char line[64], buf[256];

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("only_lib: ready pid=%d port=0\n", (int)getpid());
	while (fgets(line, sizeof(line), stdin)) {
		greet_reply(buf, sizeof(buf), "x");
		printf("%s\n", buf);
	}
	return 0;
}
C
cc -O2 -o "$T/only_lib" "$T/only_lib.c" -L"$HP_BUILD/testdata" -lgreet-v1 \
	-Wl,-rpath,"$HP_BUILD/testdata"
mkfifo "$T/in"
"$T/only_lib" <"$T/in" >"$T/only.out" &
lib_pid=$!
exec 4>"$T/in"
for _ in $(seq 50); do grep -q ready "$T/only.out" && break; sleep 0.1; done
expect_exit 0 "apply to a process that maps only the library" \
	"$HPATCH" apply -p "$lib_pid" --trust "$T/trust" "$T/both.hpatch"
check "only the library was patched" grep -q "module: .*libgreet-v1.so" "$T/last.out"
check "... not the program" bash -c "! grep -q greet_host '$T/last.out'"
echo >&4
for _ in $(seq 50); do grep -q HELLO "$T/only.out" && break; sleep 0.1; done
check "library answers v2" grep -q "HELLO x (lib v2, call 1" "$T/only.out"
exec 4>&-
wait "$lib_pid"
finish
