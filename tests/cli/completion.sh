#!/usr/bin/env bash
# bash completion (completion/hpatch.bash) against the built tools:
# subcommands, every option of each subcommand's table, option arguments by
# kind (a pid for -p, a directory for --trust, debug categories after a
# comma), hpdiff's --and, and nothing for a number.
. "$(dirname "$0")/../e2e/lib.bash"
. "$HP_SRC/completion/hpatch.bash"

# comp WORD...: complete the last word as bash would; the result in $REPLY_
comp() {
	COMP_WORDS=("$@")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	_hpatch
	REPLY_=" ${COMPREPLY[*]} "
}
has() { [[ $REPLY_ == *" $1 "* ]]; }
lacks() { [[ $REPLY_ != *" $1 "* ]]; }

cd "$T"
mkdir keys.d
touch fix.hpatch
HPATCH=$HP_BUILD/runtime/hpatch HPSIGN=$HP_BUILD/signing/hpsign

comp "$HPATCH" ""
for c in apply revert status inspect; do check "hpatch: command $c" has "$c"; done
comp "$HPATCH" re
check "hpatch re: revert only" test "$REPLY_" = " revert "
comp "$HPSIGN" ke
check "hpsign ke: keygen and keyid" test "$REPLY_" = " keygen keyid "

# Every option in each command's --help completes, and no other.
for c in apply revert status inspect; do
	want=$("$HPATCH" "$c" --help | grep -oE '^ +(-[a-z], )?--[a-z-]+' |
		grep -oE -- '--[a-z-]+' | sort)
	comp "$HPATCH" "$c" --
	got=$(tr ' ' '\n' <<<"$REPLY_" | grep . | sort)
	check "hpatch $c --: exactly its $(wc -l <<<"$want") options" test "$want" = "$got"
done
comp "$HPATCH" -v apply --all --a
check "a common option before the command is skipped" test "$REPLY_" = " --all --allow-active --allow-downgrade --audit-log "

sleep 60 &
pid=$!
PIDS+=("$pid")
comp "$HPATCH" apply -p ""
check "apply -p: running pids" has "$pid"
check "apply -p: no files" lacks fix.hpatch
comp "$HPATCH" apply --pid ""
check "apply --pid: running pids" has "$pid"
comp "$HPATCH" apply --trust ""
check "apply --trust: directories" test "$REPLY_" = " keys.d "
comp "$HPATCH" apply --timeout ""
check "apply --timeout: nothing" test "$REPLY_" = "  "
comp "$HPATCH" apply --debug correlate,p
check "--debug after a comma" test "$REPLY_" = " correlate,ptrace "
comp "$HPATCH" apply -p 1 f
check "apply FILE: files" test "$REPLY_" = " fix.hpatch "

comp "$HP_BUILD/differ/hpdiff" --old o --an
check "hpdiff --and (from the usage line)" test "$REPLY_" = " --and "
comp "$HP_BUILD/differ/hpdiff" --
check "hpdiff: --include-line-changes" has --include-line-changes
comp "$HP_BUILD/differ/hpdiff" -o ""
check "hpdiff -o: files" has fix.hpatch
comp "$HPSIGN" verify --
check "hpsign verify: --pub and --trust" test "$REPLY_" = " --debug --help --pub --quiet --trust --verbose "

# Registered for the installed names.
check "complete -F _hpatch for hpatch, hpdiff, hpsign" \
	bash -c ". '$HP_SRC/completion/hpatch.bash'; complete -p hpatch hpdiff hpsign >/dev/null"
finish
