#!/usr/bin/env bash
# The hpatch.live collection (ansible/): every test of `ansible-test
# sanity`, offline. Its Python-based tests (pep8, pylint, yamllint,
# validate-modules, import, ansible-doc, runtime-metadata) normally
# pip-install pinned tools from PyPI into virtualenvs of their own;
# ansible_test_debian.py gives them Debian's packages instead (installed by
# scripts/setup.sh; versions close to the pins, see there).
# Excluded: nothing. Run but with nothing to look at in this collection:
# pslint (no PowerShell), shellcheck (no shell scripts), action-plugin-docs
# (no action plugins), changelog (no changelogs/). compile runs on Debian's
# Python only (3.11), the one Python here. Ignored, in
# tests/sanity/ignore-2.14.txt: validate-modules' missing-gplv3-license, as
# the project has no license yet (debian/copyright) and choosing one is its
# owners' call.
# Then ansible-doc on the role (sanity documents modules, not roles).
. "$(dirname "$0")/../e2e/lib.bash"
command -v ansible-test >/dev/null || { echo "skip: no ansible-test (scripts/setup.sh installs ansible-core)" >&2; exit 77; }
C=$T/ansible_collections/hpatch/live
mkdir -p "$(dirname "$C")"
cp -r "$HP_SRC/ansible/ansible_collections/hpatch/live" "$C"
# ansible-test keeps its virtualenvs under ~/.ansible/test: this test's own.
export ANSIBLE_COLLECTIONS_PATH=$T ANSIBLE_HOME=$T/ansible-home ANSIBLE_NOCOLOR=1 HOME=$T/home
# Debian's ansible-test runs on Debian's Python, whatever python3 PATH finds.
PY=/usr/bin/python3
sanity() { (cd "$C" && "$PY" "$HP_SRC/tests/cli/ansible_test_debian.py" sanity "$@"); }

nr_tests=$(sanity --list-tests | wc -l)
expect_exit 0 "ansible-test sanity: all $nr_tests tests" \
	sanity --python "$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
check "... each of them ran" test "$(grep -c '^Running sanity test' "$T/last.out")" = "$nr_tests"
check "... none skipped, none failed" bash -c "! grep -Eq 'ERROR|Skipping' '$T/last.out' '$T/last.err'"
for t in pep8 pylint yamllint validate-modules import ansible-doc runtime-metadata; do
	check "... $t among them" grep -q "^Running sanity test \"$t\"" "$T/last.out"
done

# The sanity run finds real problems: one of each kind planted in a copy.
cp "$C/plugins/modules/patch_facts.py" "$T/patch_facts.py"
printf 'LEFT = left_over\n' >>"$C/plugins/modules/patch_facts.py"
sed -i 's/^  store:$/  stores:/' "$C/plugins/modules/patch_facts.py"
printf -- '---\nkey: [a,\n' >"$C/meta/bad.yml"
expect_exit 1 "planted problems: sanity fails" sanity --test pylint --test validate-modules --test yamllint
check "... pylint: the undefined name" grep -q 'patch_facts.py:[0-9:]* undefined-variable' "$T/last.out"
check "... validate-modules: the option documented under another name" \
	grep -q 'patch_facts.py:0:0: undocumented-parameter' "$T/last.out"
check "... yamllint: the broken YAML" grep -q 'meta/bad.yml' "$T/last.out"
cp "$T/patch_facts.py" "$C/plugins/modules/patch_facts.py"
rm "$C/meta/bad.yml"

expect_exit 0 "ansible-doc -t role hpatch.live.rollout" ansible-doc -t role hpatch.live.rollout
check "... documents the health check and the fallback" \
	bash -c "grep -q hpatch_health_cmd '$T/last.out' && grep -q hpatch_fallback_cmd '$T/last.out'"
finish
