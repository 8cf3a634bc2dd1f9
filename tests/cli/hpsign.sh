#!/usr/bin/env bash
# CLI test for hpsign: each case checks the exit status and the words of
# the message (stdout for results, stderr for diagnostics).
# Needs HP_BUILD (build dir); run as 'bash hpsign.sh'.
set -euo pipefail

: "${HP_BUILD:?HP_BUILD must name the build directory}"
HPSIGN=$HP_BUILD/signing/hpsign
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
PASSED=0
FAILED=0

# expect DESC STATUS CMD...: run CMD (output in $T/out, $T/err) and check
# its exit status.
expect() {
	local desc=$1 want=$2 got=0
	shift 2
	"$@" >"$T/out" 2>"$T/err" || got=$?
	if [ "$got" -eq "$want" ]; then
		PASSED=$((PASSED + 1))
		echo "ok: $desc"
	else
		FAILED=$((FAILED + 1))
		echo "FAIL: $desc: exit $got, expected $want" >&2
		sed 's/^/  stdout: /' "$T/out" >&2
		sed 's/^/  stderr: /' "$T/err" >&2
	fi
}

# has DESC FILE WORDS...: FILE ($T/out or $T/err) contains every WORD.
has() {
	local desc=$1 file=$2 w
	shift 2
	for w in "$@"; do
		if ! grep -qF -- "$w" "$file"; then
			FAILED=$((FAILED + 1))
			echo "FAIL: $desc: no '$w' in $(basename "$file"):" >&2
			sed 's/^/  /' "$file" >&2
			return 0
		fi
	done
	PASSED=$((PASSED + 1))
	echo "ok: $desc"
}

# empty DESC FILE: nothing was written to FILE.
empty() {
	if [ -s "$2" ]; then
		FAILED=$((FAILED + 1))
		echo "FAIL: $1: unexpected output:" >&2
		sed 's/^/  /' "$2" >&2
	else
		PASSED=$((PASSED + 1))
		echo "ok: $1"
	fi
}

cd "$T"

# keygen
expect "keygen" 0 "$HPSIGN" keygen rel
has "keygen names the key and both files" out "key id: " rel.key rel.pub
empty "keygen is quiet on stderr" err
KEYID=$(sed -n 's/^key id: \([0-9a-f]\{16\}\)$/\1/p' out)
[ -n "$KEYID" ] || { echo "FAIL: no key id in keygen output" >&2; exit 1; }
expect "secret key is mode 600" 0 test "$(stat -c %a rel.key)" = 600
expect "keyid prints the id" 0 "$HPSIGN" keyid rel.pub
has "keyid output" out "$KEYID"

cp rel.key rel.key.orig
expect "second keygen refused" 1 "$HPSIGN" keygen rel
has "refusal names the file" err "error:" "'rel.key'" "already exists"
expect "refused keygen kept the key" 0 cmp rel.key rel.key.orig
rm rel.key.orig

# sign and verify
printf 'patch contents\n' >f.hpatch
cp f.hpatch f.orig
expect "sign" 0 "$HPSIGN" sign --key rel.key f.hpatch
has "sign names the key" out "f.hpatch" "$KEYID"
expect "signature is 80 bytes" 0 \
	test "$(stat -c %s f.hpatch)" -eq $(($(stat -c %s f.orig) + 80))
expect "verify --pub" 0 "$HPSIGN" verify --pub rel.pub f.hpatch
has "verify says good" out "f.hpatch: good signature by key $KEYID"
mkdir trusted.d
cp rel.pub trusted.d/
expect "verify --trust" 0 "$HPSIGN" verify --trust trusted.d f.hpatch
has "verify --trust says good" out "good signature by key $KEYID"

expect "sign again replaces the signature" 0 \
	"$HPSIGN" sign --key rel.key f.hpatch
expect "still one trailer" 0 \
	test "$(stat -c %s f.hpatch)" -eq $(($(stat -c %s f.orig) + 80))
expect "verify after re-sign" 0 "$HPSIGN" verify --pub rel.pub f.hpatch
chmod 640 f.hpatch
expect "sign keeps the file's mode" 0 "$HPSIGN" sign --key rel.key f.hpatch
expect "mode still 640" 0 test "$(stat -c %a f.hpatch)" = 640

# another key: not trusted
expect "keygen other" 0 "$HPSIGN" keygen other
expect "verify with another key" 1 "$HPSIGN" verify --pub other.pub f.hpatch
has "untrusted names file and key" err "'f.hpatch'" "$KEYID" "other.pub"
mkdir other.d
cp other.pub other.d/
expect "verify with another trust dir" 1 \
	"$HPSIGN" verify --trust other.d f.hpatch
has "untrusted names the dir" err "'f.hpatch'" "$KEYID" "other.d"
expect "verify with a missing trust dir" 1 \
	"$HPSIGN" verify --trust no-such.d f.hpatch
has "missing dir: warning and error" err "warning:" "'no-such.d'" \
	"not in 'no-such.d'"

# tamper with one byte of the content
cp f.hpatch bad.hpatch
printf 'P' | dd of=bad.hpatch bs=1 seek=0 conv=notrunc status=none
expect "tampered file fails" 1 "$HPSIGN" verify --pub rel.pub bad.hpatch
has "tamper: bad signature" err "error:" "'bad.hpatch'" "bad signature" \
	"$KEYID"
empty "tamper: nothing on stdout" out

# unsigned file
expect "unsigned file fails" 1 "$HPSIGN" verify --pub rel.pub f.orig
has "unsigned: says so" err "'f.orig'" "not signed"

# secret key permissions
chmod 644 rel.key
expect "sign with a 644 key refused" 1 "$HPSIGN" sign --key rel.key f.orig
has "perm message" err "'rel.key'" "0644" "chmod 600 rel.key"
expect "refused sign left the file alone" 0 cmp f.orig <(printf 'patch contents\n')
chmod 600 rel.key
expect "public key as --key refused" 1 "$HPSIGN" sign --key rel.pub f.orig
has "public key message" err "'rel.pub'" "public key"

# usage
expect "unknown subcommand" 2 "$HPSIGN" frobnicate
has "unknown subcommand message" err "unknown command 'frobnicate'"
expect "no prefix abbreviations" 2 "$HPSIGN" ver
expect "verify needs a key" 2 "$HPSIGN" verify f.hpatch
has "verify usage message" err "--pub" "--trust"
expect "unknown option" 2 "$HPSIGN" sign --bogus f.hpatch
expect "--help" 0 "$HPSIGN" --help
has "--help on stdout" out "usage: hpsign" keygen sign verify keyid
empty "--help: nothing on stderr" err
expect "sign --help" 0 "$HPSIGN" sign --help
has "sign --help lists --key" out "usage: hpsign sign" "--key"
expect "--version" 0 "$HPSIGN" --version
has "--version output" out "hpsign"

echo "hpsign cli: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
