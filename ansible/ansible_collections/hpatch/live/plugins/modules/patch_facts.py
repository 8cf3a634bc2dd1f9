#!/usr/bin/python
# -*- coding: utf-8 -*-
# What live patches a host has: installed in its store, and in effect in
# its processes, from `hpatch list --json` and `hpatch status --json`.
from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: patch_facts
short_description: Live patches installed on a host and in effect in its processes
description:
  - Reads C(hpatch list --json) (the host's patch store and, per installed
    patch, each process of its build as C(hpatchd) sees it) and
    C(hpatch status --json) (the patches recorded inside each process).
  - Sets C(hpatch_installed), the store's patches; C(hpatch_processes),
    every process with a patch and each patch's state there;
    C(hpatch_unknown), the processes whose patches hpatch cannot tell; and
    C(hpatch_patches), per patch id the pids in each state, from both.
author: hpatch maintainers (!UNKNOWN)
options:
  store:
    description: The host's patch store (C(hpatch list --store)); default
      hpatch's own, C(/var/lib/hpatch/patches).
    type: path
  state_dir:
    description: hpatchd's state directory (C(--state-dir)), where its view of
      pending and refused processes is; default hpatch's own, C(/run/hpatch).
    type: path
  trust_dir:
    description: Trusted public keys, to verify the store's files
      (C(--trust)); default hpatch's own, C(/etc/hpatch/trusted.d).
    type: path
  hpatch:
    description: The hpatch program; default the one on C(PATH).
    type: path
'''

EXAMPLES = r'''
- hpatch.live.patch_facts:
- name: Processes still waiting for the fix
  ansible.builtin.debug:
    msg: "{{ hpatch_patches['CVE-2026-1234'].pending | default([]) }}"
'''

RETURN = r'''
ansible_facts:
  description: The facts.
  returned: always
  type: dict
  contains:
    hpatchd_running:
      description: Whether hpatchd runs (its view is fresh).
      type: bool
    hpatch_installed:
      description: C(hpatch list --json)'s patches, each with its id, file,
        store state (C(installed), C(superseded), or why its file no longer
        verifies), sequence, key id, modules and processes (pid, state,
        reason).
      type: list
      elements: dict
    hpatch_processes:
      description: C(hpatch status --json)'s processes.
      type: list
      elements: dict
    hpatch_unknown:
      description: The processes whose patches C(hpatch status) cannot tell
        (their memory closed to it), each with its pid and the reason;
        C(hpatch_processes) may lack their patches.
      type: list
      elements: dict
    hpatch_patches:
      description:
        - Per patch id, C(installed) (bool), C(store_state), and per state
          the pids.
        - From the store's view (installed patches) C(applied), C(pending),
          C(busy), C(refused), C(gave_up), C(excluded), with C(reasons),
          a dict from pid (as a string) to why it is not applied.
        - From the processes' own records C(active), C(partly_replaced),
          C(superseded), C(retired).
      type: dict
'''

import json

from ansible.module_utils.basic import AnsibleModule


def run_json(module, args, what):
    rc, out, err = module.run_command(args)
    try:
        doc = json.loads(out) if out.strip() else None
    except ValueError:
        doc = None
    # status's exit 1 with processes it cannot read (each under 'unknown'):
    # facts all the same, those processes among them.
    if rc == 1 and what == 'status' and doc and doc.get('unknown'):
        return doc
    if rc != 0:
        module.fail_json(msg="hpatch %s: %s" % (what, err.strip()), hpatch_rc=rc)
    if doc is None:
        module.fail_json(msg="hpatch %s printed no JSON" % what, stdout=out)
    return doc


def key(state):
    """A state as a fact key: 'gave-up' -> 'gave_up'."""
    return state.replace('partly replaced by a newer patch',
                         'partly_replaced').replace('-', '_').replace(' ', '_')


def main():
    module = AnsibleModule(argument_spec=dict(store=dict(type='path'),
                                              state_dir=dict(type='path'),
                                              trust_dir=dict(type='path'),
                                              hpatch=dict(type='path')),
                           supports_check_mode=True)
    p = module.params
    hpatch = p['hpatch'] or module.get_bin_path(
        'hpatch', required=True, opt_dirs=['/usr/sbin', '/sbin'])
    args = [hpatch, 'list', '--json']
    for opt, name in (('--store', 'store'), ('--state-dir', 'state_dir'),
                      ('--trust', 'trust_dir')):
        if p[name]:
            args += [opt, p[name]]
    listing = run_json(module, args, 'list')
    status = run_json(module, [hpatch, 'status', '--json'], 'status')
    procs = status.get('processes', [])

    patches = {}
    for e in listing.get('patches', []):
        fact = patches.setdefault(e['patch_id'], {})
        fact.update(installed=True, store_state=e.get('state', ''))
        reasons = fact.setdefault('reasons', {})
        for q in e.get('processes', []):
            fact.setdefault(key(q.get('state', '')), []).append(q['pid'])
            if q.get('reason'):
                reasons[str(q['pid'])] = q['reason']
    for proc in procs:
        for q in proc.get('patches', []):
            fact = patches.setdefault(q['patch_id'], {'installed': False,
                                                      'store_state': 'not installed'})
            fact.setdefault(key(q.get('state', '')), []).append(proc['pid'])
    module.exit_json(changed=False, ansible_facts=dict(
        hpatchd_running=listing.get('hpatchd_running', False),
        hpatch_installed=listing.get('patches', []),
        hpatch_processes=procs, hpatch_unknown=status.get('unknown', []),
        hpatch_patches=patches))


if __name__ == '__main__':
    main()
