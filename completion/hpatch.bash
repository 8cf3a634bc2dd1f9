# bash completion for hpatch, hpdiff, hpsign (and hpatchd).
#
# Subcommands and options are read from the tool's own --help, which each
# tool generates from the option tables its parser uses (common/hp_cli.c):
# a new option completes the day it exists, and nothing here can drift from
# the parser. An option's argument completes by the name --help gives it:
# PID a running process, DIR a directory, CMD a command, CATS a debug
# category; FILE, KEY, PUB, BIN, OLD, NEW and OUT a path; other names
# (MS, N, T, TEXT, ID) nothing.

# _hpatch_help TOOL [CMD]: the tool's --help text, cached per command line.
_hpatch_help()
{
	local key="$*"
	if [[ $key != "${_hpatch_help_key-}" ]]; then
		_hpatch_help_text=$(LC_ALL=C "$@" --help 2>/dev/null)
		_hpatch_help_key=$key
	fi
	printf '%s\n' "$_hpatch_help_text"
}

# _hpatch_commands TOOL: the names listed under "commands:", if any.
_hpatch_commands()
{
	_hpatch_help "$1" | sed -n '/^commands:/,/^$/s/^  \([a-z][a-z0-9-]*\) .*/\1/p'
}

# _hpatch_options TOOL [CMD]: lines "OPTION [ARG]" from the options table,
# both the long and the short spelling; then the options only the usage
# line names (hpdiff's --and, which separates modules).
_hpatch_options()
{
	_hpatch_help "$@" | sed -n \
		-e 's/^  \(-[A-Za-z0-9]\), \(--[a-z0-9-]*\)\( \([A-Z]*\)\)\{0,1\}  .*/\1 \4\n\2 \4/p' \
		-e 's/^      \(--[a-z0-9-]*\)\( \([A-Z]*\)\)\{0,1\}  .*/\1 \3/p'
	_hpatch_help "$@" | sed -n '1s/^usage: //p' | grep -o -- '--[a-z0-9-]*' |
		sed 's/$/ /'
}

_hpatch()
{
	local cur=${COMP_WORDS[COMP_CWORD]} prev=""
	local tool=${COMP_WORDS[0]} cmd="" cmds w i arg opt
	local -a opts
	((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
	COMPREPLY=()

	cmds=$(_hpatch_commands "$tool")
	if [[ -n $cmds ]]; then
		for ((i = 1; i < COMP_CWORD; i++)); do
			w=${COMP_WORDS[i]}
			[[ $w == -* ]] && continue
			cmd=$w
			break
		done
		if [[ -z $cmd ]]; then
			COMPREPLY=($(compgen -W "$cmds --help --version" -- "$cur"))
			return
		fi
	fi

	mapfile -t opts < <(_hpatch_options "$tool" ${cmd:+"$cmd"})
	for opt in "${opts[@]}"; do
		[[ ${opt%% *} == "$prev" ]] || continue
		arg=${opt#* }
		case $arg in
		PID) COMPREPLY=($(compgen -W "$(cd /proc && printf '%s ' [0-9]*)" -- "$cur")) ;;
		DIR) COMPREPLY=($(compgen -d -- "$cur")) ;;
		CMD) COMPREPLY=($(compgen -c -- "$cur")) ;;
		CATS) COMPREPLY=($(compgen -W "correlate reloc ptrace format timing" \
			-P "${cur%"${cur##*,}"}" -- "${cur##*,}")) ;;
		FILE | KEY | PUB | BIN | OLD | NEW | OUT) COMPREPLY=($(compgen -f -- "$cur")) ;;
		"") continue ;;
		esac
		return
	done

	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$(printf '%s\n' "${opts[@]%% *}" | sort -u)" -- "$cur"))
		return
	fi
	COMPREPLY=($(compgen -f -- "$cur"))
}

complete -o filenames -F _hpatch hpatch hpdiff hpsign hpatchd
