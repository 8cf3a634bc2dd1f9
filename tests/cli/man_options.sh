#!/usr/bin/env bash
# The man pages document the options the tools have. For every tool, and
# every subcommand its --help lists, each option of its table (as --help
# prints it: the table drives both parser and usage) must appear in its man
# page, in that subcommand's section or under COMMON OPTIONS (for a tool
# without subcommands, under OPTIONS); every option the page lists as an
# entry must exist; every subcommand has a section and every section a
# subcommand. So a new option or command without docs fails the suite, and
# so do docs of a removed one. Every page also renders without a warning.
. "$(dirname "$0")/../e2e/lib.bash"
M=$HP_BUILD/man
if [ ! -d "$M" ]; then
	echo "skip: no man pages (configured with -DHP_MAN=OFF)" >&2
	exit 77
fi

# opts TOOL [CMD]: the options in --help's table, short and long spelling,
# and those only its usage line names (hpdiff's --and).
opts() {
	"$@" --help | sed -n \
		-e 's/^  \(-[A-Za-z0-9]\), \(--[a-z0-9-]*\).*/\1\n\2/p' \
		-e 's/^      \(--[a-z0-9-]*\).*/\1/p'
}
usage_opts() { "$@" --help | sed -n '1s/^usage: //p' | grep -o -- '--[a-z0-9-]*' || true; }
commands() { "$1" --help | sed -n '/^commands:/,/^$/s/^  \([a-z][a-z0-9-]*\) .*/\1/p'; }

# section PAGE SH [SS]: the roff lines under ".SH SH" (only ".SS SS" in it).
section() {
	awk -v sh="$2" -v ss="${3-}" '
		/^\.SH / { insh = substr($0, 5) == sh; inss = 0; next }
		/^\.SS / { inss = substr($0, 5) == ss; next }
		insh && (ss == "" || inss)' "$1"
}
# entries: the options of the tagged entries (a line of bold options, then
# scdoc's ".RS 4") in the roff text on stdin.
entries() {
	awk '/^\.RS 4$/ && prev ~ /^\\fB-/ { print prev } { prev = $0 }' |
		grep -o '\\fB-[^\\]*\\fR' | sed 's/^\\fB//; s/\\fR$//' || true
}
documented() { grep -qF "\\fB$2\\fR" <<<"$1"; }

# check_cmd TOOL PAGE DOCS [CMD]: every option documented in DOCS, every
# entry of DOCS (less those of COMMON, $common) an option.
check_cmd() {
	local tool=$1 page=$2 docs=$3 cmd=${4-} o name
	local have
	name="$(basename "$tool")${cmd:+ $cmd}"
	have=$(opts "$tool" ${cmd:+"$cmd"}; usage_opts "$tool" ${cmd:+"$cmd"}; echo --version)
	for o in $(opts "$tool" ${cmd:+"$cmd"}); do
		if documented "$docs" "$o"; then
			ok "$name $o: in $(basename "$page")"
		else
			fail "$name $o: not in $(basename "$page") (document it in man/$(basename "$page").scd)"
		fi
	done
	for o in $(entries <<<"$docs"); do
		grep -qxF -- "$o" <<<"$have" ||
			fail "$name: $(basename "$page") documents '$o', which it does not have"
	done
}

tools=(differ/hpdiff signing/hpsign runtime/hpatch)
hpatchd=$(find "$HP_BUILD" -maxdepth 2 -type f -name hpatchd -perm -u+x | head -1)
[ -n "$hpatchd" ] && tools+=("${hpatchd#"$HP_BUILD"/}")

for t in "${tools[@]}"; do
	tool=$HP_BUILD/$t
	name=$(basename "$t")
	page=$(ls "$M/$name".[18] 2>/dev/null | head -1)
	if [ -z "$page" ]; then
		fail "$name: no man page $name.1 or $name.8 (add man/$name.8.scd)"
		continue
	fi
	cmds=$(commands "$tool")
	if [ -z "$cmds" ]; then
		check_cmd "$tool" "$page" "$(section "$page" OPTIONS)"
		continue
	fi
	common=$(section "$page" "COMMON OPTIONS")
	for c in $cmds; do
		docs=$(section "$page" COMMANDS "$c")
		if [ -z "$docs" ]; then
			fail "$name $c: no section '## $c' under COMMANDS in $(basename "$page")"
			continue
		fi
		check_cmd "$tool" "$page" "$docs
$common" "$c"
	done
	for s in $(section "$page" COMMANDS | sed -n 's/^\.SS //p'); do
		grep -qxF "$s" <<<"$cmds" ||
			fail "$name: $(basename "$page") documents command '$s', which it does not have"
	done
	# The common options are every command's.
	for o in $(entries <<<"$common"); do
		for c in $cmds; do
			opts "$tool" "$c" | grep -qxF -- "$o" ||
				fail "$name $c: COMMON OPTIONS lists '$o', which it does not have"
		done
	done
done

# Every page, hpatch-format(5) included, renders cleanly.
for page in "$M"/*.[0-9]; do
	warn=$(LC_ALL=C.UTF-8 groff -k -man -Tutf8 -ww -z "$page" 2>&1) # -k: preconv, as man does
	check "$(basename "$page") renders without warnings${warn:+: $warn}" test -z "$warn"
done
check "hpatch-format(5) has the format's sections" \
	grep -q '^\.SH SIGNATURE TRAILER' "$M/hpatch-format.5"
finish
