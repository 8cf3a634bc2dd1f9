#!/usr/bin/env bash
# The hpatch.live collection (ansible/): `ansible-test sanity` with every
# test that runs offline (the others build a virtualenv from PyPI: pep8,
# pylint, yamllint, validate-modules, import, ansible-doc, runtime-metadata),
# then ansible-doc on each module and the role, and, in validate-modules'
# place, each module's documented options against its argument_spec: names,
# types, choices, defaults, required.
. "$(dirname "$0")/../e2e/lib.bash"
command -v ansible-test >/dev/null || { echo "skip: no ansible-test (scripts/setup.sh installs ansible-core)" >&2; exit 77; }
C=$T/ansible_collections/hpatch/live
mkdir -p "$(dirname "$C")"
cp -r "$HP_SRC/ansible/ansible_collections/hpatch/live" "$C"
export ANSIBLE_COLLECTIONS_PATH=$T ANSIBLE_HOME=$T/ansible-home ANSIBLE_NOCOLOR=1

offline=(action-plugin-docs changelog compile empty-init future-import-boilerplate
	ignores line-endings metaclass-boilerplate no-assert no-basestring
	no-dict-iteritems no-dict-iterkeys no-dict-itervalues no-get-exception
	no-illegal-filenames no-main-display no-smart-quotes no-unicode-literals
	replace-urlopen shebang shellcheck symlinks use-argspec-type-path use-compat-six)
expect_exit 0 "ansible-test sanity (${#offline[@]} offline tests)" \
	bash -c 'cd "$1" && shift && ansible-test sanity --python "$(python3 -c "import sys; print(\"%d.%d\" % sys.version_info[:2])")" $(printf -- "--test %s " "$@")' - "$C" "${offline[@]}"
check "... none failed" bash -c "! grep -q 'ERROR' '$T/last.out' '$T/last.err'"
for m in patch patch_facts; do
	expect_exit 0 "ansible-doc hpatch.live.$m" ansible-doc hpatch.live.$m
done
expect_exit 0 "ansible-doc -t role hpatch.live.rollout" ansible-doc -t role hpatch.live.rollout
check "... documents the health check" grep -q hpatch_health_cmd "$T/last.out"

for m in "$C"/plugins/modules/*.py; do
	expect_exit 0 "$(basename "$m"): documented options = argument_spec" python3 - "$m" <<'PY'
import ast, sys, yaml
src = open(sys.argv[1]).read()
tree = ast.parse(src)
doc = yaml.safe_load(next(n.value.value for n in tree.body if isinstance(n, ast.Assign)
                          and n.targets[0].id == 'DOCUMENTATION'))['options'] or {}
spec = {}
for node in ast.walk(tree):
    if isinstance(node, ast.keyword) and node.arg == 'argument_spec':
        for k in node.value.keywords:
            spec[k.arg] = {kw.arg: ast.literal_eval(kw.value) for kw in k.value.keywords}
bad = []
for name in sorted(set(doc) | set(spec)):
    d, s = doc.get(name), spec.get(name)
    if d is None or s is None:
        bad.append("%s: %s" % (name, "undocumented" if d is None else "not in argument_spec"))
        continue
    for key, dflt in (('type', 'str'), ('choices', None), ('default', None),
                      ('required', False), ('elements', None)):
        if d.get(key, dflt) != s.get(key, dflt):
            bad.append("%s: %s %r documented, %r in argument_spec"
                       % (name, key, d.get(key, dflt), s.get(key, dflt)))
print("\n".join(bad), file=sys.stderr)
sys.exit(1 if bad else 0)
PY
done
finish
