# Helpers for the Ansible scenarios (sourced after lib.bash): the
# hpatch.live collection from this tree, and hosts on this machine.
command -v ansible-playbook >/dev/null || { echo "skip: no ansible-playbook (scripts/setup.sh installs ansible-core)" >&2; exit 77; }
export ANSIBLE_COLLECTIONS_PATH=$HP_SRC/ansible ANSIBLE_HOME=$T/ansible-home
export ANSIBLE_LOCAL_TEMP=$T/ansible-tmp ANSIBLE_REMOTE_TEMP=$T/ansible-tmp
export ANSIBLE_NOCOLOR=1 ANSIBLE_DEPRECATION_WARNINGS=0 ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3

# fleet_hosts H...: each host H, local connection, gets what a real host
# has to itself: a service of its own build ($T/bin/H, svc-v1 with a
# build-id of its own, running as ${PID[H]} on ${PORT[H]}), the patch for
# that build ($T/H.hpatch, id $id-H: a build is one host's, so `apply
# --all` and `uninstall` reach only that host's processes) and a store
# ($T/H/store). Key k, trusted in $T/trust.
declare -A PID PORT
fleet_hosts() {
	local h
	make_key k
	mkdir -p "$T/bin"
	for h in "$@"; do
		mkdir -p "$T/$h"
		unique_build svc "$T/bin/$h" "$T/$h.hpatch" --key "$T/k.key" --id "$id-$h"
		start_target "$T/bin/$h" "$T/$h/svc.log" 1
		PID[$h]=$TARGET_PID PORT[$h]=$TARGET_PORT
	done
}
# version H: what H's service answers to "version" (v1, or v2 patched).
version() { exec 7<>"/dev/tcp/127.0.0.1/${PORT[$1]}"; ask 7 version; exec 7>&-; }
# stored H: the files in H's store (none: "").
stored() { ls "$T/$1/store" 2>/dev/null | grep -v '^\.lock$' | tr '\n' ' '; }
# inventory_vars: the variables every host shares, as YAML (4 spaces in).
inventory_vars() {
	cat <<YAML
    ansible_connection: local
    hpatch_binary: $HPATCH
    hpatch_trust_dir: $T/trust
    hpatch_audit_log: $T/audit.log
    hpatch_state_dir: $HPATCH_STATE_DIR
YAML
}
# host_vars H: H's own, as the inside of a YAML flow mapping.
host_vars() { printf 'hpatch_src: %s/%s.hpatch, hpatch_store: %s/%s/store' "$T" "$1" "$T" "$1"; }
# hosts_yml H...: $T/hosts.yml, an inventory of hosts H (fleet_hosts'),
# each with host_vars, under inventory_vars.
hosts_yml() {
	local h
	{
		printf 'all:\n  vars:\n'
		inventory_vars
		printf '  hosts:\n'
		for h in "$@"; do printf '    %s: {%s}\n' "$h" "$(host_vars "$h")"; done
	} >"$T/hosts.yml"
}
