#!/usr/bin/python
# -*- coding: utf-8 -*-
# Apply or revert one signed live patch on a host's running processes,
# through the hpatch command line (apply, revert, status and inspect, all
# with --json). Idempotence comes from hpatch itself: exit status 3 means
# already applied, or nothing to revert.
from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: patch
short_description: Apply or revert a signed live patch on running processes
description:
  - Puts a C(.hpatch) file into the running processes of its target build
    with C(hpatch apply), or takes it back out with C(hpatch revert), so
    that every process named (or every process of the build) ends in the
    wanted state. No process is restarted.
  - Runs the C(hpatch) found on C(PATH), or I(hpatch).
  - Idempotent. C(hpatch) exits 3 when the patch is already applied, or
    there is nothing to revert; the module then reports C(changed=false).
  - Check mode reads C(hpatch inspect) and C(hpatch status) and touches no
    process. Without I(pids), which processes map the target build is only
    known to C(hpatch apply --all), so check mode then reports a change
    unless the patch is already in effect in some process.
  - Built on the commands hpatch has today (apply, revert, status,
    inspect). The host's patch store (C(hpatch install), state
    C(installed), option C(store)) is not there yet and not offered.
author: hpatch maintainers
options:
  src:
    description: The patch file on the host.
    type: path
    required: true
  state:
    description:
      - C(applied) applies the patch to I(pids), or to every running process
        that maps its target build.
      - C(absent) reverts it in I(pids), or in every process where it is in
        effect. A process where a newer patch was applied over it is an
        error (reverting would take the newer one back).
    type: str
    choices: [applied, absent]
    default: applied
  pids:
    description: The processes to patch or revert; default all (see I(state)).
    type: list
    elements: int
  trust_dir:
    description: Trusted public keys (C(hpatch --trust)); default hpatch's own,
      C(/etc/hpatch/trusted.d).
    type: path
  timeout:
    description: Milliseconds to retry a function that stays busy (C(--timeout)).
    type: int
  allow_active:
    description: Switch even while the old code runs (C(--allow-active)).
    type: bool
    default: false
  on_refuse:
    description: Command hpatch runs for each process it could not patch
      (C(--on-refuse)), for example a service restart.
    type: str
  audit_log:
    description: The audit log (C(--audit-log)); default hpatch's own.
    type: path
  hpatch:
    description: The hpatch program; default the one on C(PATH).
    type: path
'''

EXAMPLES = r'''
- name: Patch every process of the build
  hpatch.live.patch:
    src: /var/lib/hpatch/CVE-2026-1234.hpatch

- name: Patch two processes, restarting what cannot be patched
  hpatch.live.patch:
    src: /var/lib/hpatch/CVE-2026-1234.hpatch
    pids: [4242, 4243]
    on_refuse: systemctl restart myservice

- name: Take it back out everywhere
  hpatch.live.patch:
    src: /var/lib/hpatch/CVE-2026-1234.hpatch
    state: absent
'''

RETURN = r'''
patch_id:
  description: The patch's id.
  returned: always
  type: str
processes:
  description: One entry per process acted on (or, in check mode, that
    would be), with hpatch's result (C(ok), C(HP_E_APPLIED), C(HP_E_BUSY) ...)
    and its reason.
  returned: always
  type: list
  elements: dict
  sample: [{"pid": 4242, "result": "ok", "reason": ""}]
hpatch_rc:
  description:
    - hpatch's exit status (0 when nothing ran); 3 is "nothing to do".
    - Not named C(rc), which Ansible takes for a failure when non-zero.
  returned: always
  type: int
'''

import json

from ansible.module_utils.basic import AnsibleModule

HP_EXIT_NOTHING = 3


def run_json(module, args, what):
    """Run hpatch ARGS; return (rc, parsed stdout or None, stderr)."""
    rc, out, err = module.run_command(args)
    try:
        doc = json.loads(out) if out.strip() else None
    except ValueError:
        module.fail_json(msg="%s: hpatch printed no JSON" % what, hpatch_rc=rc,
                         stdout=out, stderr=err)
    return rc, doc, err


def in_effect(status):
    """{pid: [patch ids in effect]} from `hpatch status --json`."""
    out = {}
    for proc in (status or {}).get('processes', []):
        out[proc['pid']] = [p['patch_id'] for p in proc.get('patches', [])
                            if p.get('state') in ('active',
                                                  'partly replaced by a newer patch')]
    return out


def newest_active(status, pid):
    """The patch id hpatch would revert in @pid (its active one), or None."""
    for proc in (status or {}).get('processes', []):
        if proc['pid'] == pid:
            active = [p for p in proc.get('patches', [])
                      if p.get('state') == 'active']
            if active:
                return max(active, key=lambda p: p.get('applied_at', 0))['patch_id']
    return None


def results(doc, err, pids):
    """Per-process results from hpatch's JSON; if hpatch refused the file
    before any process (no JSON), every process named gets its message."""
    if doc and 'processes' in doc:
        return [{'pid': p['pid'], 'result': p.get('result', ''),
                 'reason': p.get('reason', '')} for p in doc['processes']]
    reason = err.strip().splitlines()[0] if err.strip() else ''
    return [{'pid': p, 'result': 'refused', 'reason': reason} for p in pids or []]


def state_lines(effect, patch_id, pids):
    lines = []
    for pid in sorted(pids if pids is not None else effect):
        lines.append('pid %d: %s\n' % (pid, patch_id if patch_id in effect.get(pid, [])
                                         else '(not applied)'))
    return ''.join(lines)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type='path', required=True),
            state=dict(type='str', default='applied', choices=['applied', 'absent']),
            pids=dict(type='list', elements='int'),
            trust_dir=dict(type='path'),
            timeout=dict(type='int'),
            allow_active=dict(type='bool', default=False),
            on_refuse=dict(type='str'),
            audit_log=dict(type='path'),
            hpatch=dict(type='path'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    hpatch = p['hpatch'] or module.get_bin_path('hpatch', required=True,
                                                  opt_dirs=['/usr/sbin', '/sbin'])
    trust = ['--trust', p['trust_dir']] if p['trust_dir'] else []
    common = []
    if p['timeout'] is not None:
        common += ['--timeout', str(p['timeout'])]
    if p['allow_active']:
        common += ['--allow-active']
    if p['audit_log']:
        common += ['--audit-log', p['audit_log']]
    pid_args = []
    for pid in p['pids'] or []:
        pid_args += ['-p', str(pid)]

    # The patch's id, verified against the trust store before anything else.
    rc, info, err = run_json(module, [hpatch, 'inspect', '--json'] + trust + [p['src']],
                             'inspect')
    if rc != 0:
        module.fail_json(msg="%s: %s" % (p['src'], err.strip()), hpatch_rc=rc,
                         processes=[])
    patch_id = info['patch_id']
    rc, status, err = run_json(module, [hpatch, 'status', '--json'], 'status')
    if rc != 0:
        module.fail_json(msg="hpatch status: %s" % err.strip(), hpatch_rc=rc,
                         processes=[])
    before = in_effect(status)
    with_patch = [pid for pid, ids in before.items() if patch_id in ids]
    res = dict(patch_id=patch_id, hpatch_rc=0, processes=[], changed=False)

    if p['state'] == 'applied':
        todo = ([pid for pid in p['pids'] if patch_id not in before.get(pid, [])]
                if p['pids'] is not None else None)
        if module.check_mode:
            res['changed'] = bool(todo) if todo is not None else not with_patch
            res['processes'] = [{'pid': pid, 'result': 'would apply', 'reason': ''}
                                for pid in todo or []]
            if module._diff and todo:
                after = dict((pid, before.get(pid, []) + [patch_id]) for pid in todo)
                res['diff'] = dict(before=state_lines(before, patch_id, todo),
                                   after=state_lines(after, patch_id, todo))
            module.exit_json(**res)
        args = [hpatch, 'apply', '--json'] + (pid_args or ['--all']) + trust + common
        if p['on_refuse']:
            args += ['--on-refuse', p['on_refuse']]
        rc, doc, err = run_json(module, args + [p['src']], 'apply')
    else:
        targets = p['pids'] if p['pids'] is not None else with_patch
        todo = [pid for pid in targets if patch_id in before.get(pid, [])]
        over = [pid for pid in todo if newest_active(status, pid) != patch_id]
        if over:
            module.fail_json(msg="pid %s: a newer patch is in effect over '%s'; "
                             "revert it first" % (', '.join(map(str, over)), patch_id),
                             patch_id=patch_id, hpatch_rc=0, processes=[])
        if module.check_mode or not todo:
            res['changed'] = bool(todo)
            res['processes'] = [{'pid': pid, 'result': 'would revert', 'reason': ''}
                                for pid in todo]
            if module._diff and todo:
                res['diff'] = dict(before=state_lines(before, patch_id, todo),
                                   after=state_lines({}, patch_id, todo))
            module.exit_json(**res)
        args = [hpatch, 'revert', '--json'] + common
        for pid in todo:
            args += ['-p', str(pid)]
        rc, doc, err = run_json(module, args, 'revert')

    res['hpatch_rc'] = rc
    res['processes'] = results(doc, err, p['pids'])
    if rc not in (0, HP_EXIT_NOTHING):
        module.fail_json(msg="hpatch %s '%s' failed (exit %d): %s"
                         % ('apply' if p['state'] == 'applied' else 'revert',
                            patch_id, rc, err.strip()), **res)
    res['changed'] = rc == 0
    if module._diff and res['changed']:
        _, after_status, _ = run_json(module, [hpatch, 'status', '--json'], 'status')
        shown = p['pids'] if p['pids'] is not None else sorted(
            set(with_patch) | set(r['pid'] for r in res['processes']))
        res['diff'] = dict(before=state_lines(before, patch_id, shown),
                           after=state_lines(in_effect(after_status), patch_id, shown))
    module.exit_json(**res)


if __name__ == '__main__':
    main()
