#!/usr/bin/python
# -*- coding: utf-8 -*-
# What live patches are in effect on a host, from `hpatch status --json`.
from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: patch_facts
short_description: Live patches in effect on a host's processes
description:
  - Reads C(hpatch status --json) and sets C(hpatch_processes), every
    process with a patch and each patch's state there, and
    C(hpatch_patches), for each patch id the pids where it is active,
    partly replaced, superseded or retired.
  - Patches installed in the host's store but not yet applied, and
    processes refused, need the host agent's store and are not reported.
author: hpatch maintainers
options:
  hpatch:
    description: The hpatch program; default the one on C(PATH).
    type: path
'''

EXAMPLES = r'''
- hpatch.live.patch_facts:
- ansible.builtin.debug:
    msg: "{{ hpatch_patches['CVE-2026-1234'].active | default([]) }}"
'''

RETURN = r'''
ansible_facts:
  description: The facts.
  returned: always
  type: dict
  contains:
    hpatch_processes:
      description: C(hpatch status --json)'s processes.
      type: list
      elements: dict
    hpatch_patches:
      description: Per patch id, per state (C(active), C(partly_replaced),
        C(superseded), C(retired)), the pids.
      type: dict
'''

import json

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec=dict(hpatch=dict(type='path')),
                           supports_check_mode=True)
    hpatch = module.params['hpatch'] or module.get_bin_path(
        'hpatch', required=True, opt_dirs=['/usr/sbin', '/sbin'])
    rc, out, err = module.run_command([hpatch, 'status', '--json'])
    if rc != 0:
        module.fail_json(msg="hpatch status: %s" % err.strip(), rc=rc)
    try:
        procs = json.loads(out).get('processes', [])
    except ValueError:
        module.fail_json(msg="hpatch status printed no JSON", stdout=out)
    patches = {}
    for proc in procs:
        for p in proc.get('patches', []):
            state = p.get('state', '').replace('partly replaced by a newer patch',
                                               'partly_replaced')
            patches.setdefault(p['patch_id'], {}).setdefault(state, []).append(proc['pid'])
    module.exit_json(changed=False, ansible_facts=dict(hpatch_processes=procs,
                                                       hpatch_patches=patches))


if __name__ == '__main__':
    main()
