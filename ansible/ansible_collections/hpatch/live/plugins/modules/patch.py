#!/usr/bin/python
# -*- coding: utf-8 -*-
# Install, apply or remove one signed live patch on a host, through the
# hpatch command line (install, uninstall, list, check, apply, revert,
# status and inspect, all with --json). Idempotence comes from hpatch
# itself: exit status 3 means already installed, already applied, or
# nothing to remove.
from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: patch
short_description: Install, apply or remove a signed live patch on a host
description:
  - Puts a C(.hpatch) file into the host's patch store (C(hpatch install)),
    where the host agent C(hpatchd) applies it to every process of its
    build, now and later; applies it now to the running processes
    (C(hpatch apply)); or removes it from the store and reverts it
    everywhere (C(hpatch uninstall), C(hpatch revert)). No process is
    restarted.
  - Runs the C(hpatch) found on C(PATH), or I(hpatch).
  - Idempotent. C(hpatch) exits 3 when the patch is already installed,
    already applied, or not there to remove; the module then reports
    C(changed=false).
  - Check mode changes nothing. For C(applied) it runs C(hpatch check),
    which looks at every process of the patch's build and says what an
    apply would do there now (would apply, already applied, busy, refused,
    excluded by hpatchd's policy); the module fails in check mode where
    the apply would fail. For C(installed) and C(absent) it reads
    C(hpatch list) and C(hpatch status).
  - With C(--diff), the store's membership and each process's state,
    before and after.
author: hpatch maintainers (!UNKNOWN)
options:
  src:
    description: The patch file on the host.
    type: path
    required: true
  state:
    description:
      - C(installed) puts the patch into the host's store
        (C(hpatch install)); C(hpatchd) applies it from there. No process
        is touched by the module.
      - C(applied) installs it, then applies it now to I(pids), or to every
        running process that maps its target build. None running is not
        an error, C(hpatchd) applies it to those started later. If the
        apply fails, the patch stays installed (C(hpatchd) retries it under
        its policy) and the task fails; C(absent) takes it out.
      - C(absent) removes it from the store (C(hpatch uninstall), which
        reverts it in every process) and reverts it where it is still in
        effect, applied by hand outside the store (only in I(pids) if
        given). A process where a newer patch was applied over a
        hand-applied one is an error (reverting would take the newer one
        back).
    type: str
    choices: [installed, applied, absent]
    default: applied
  pids:
    description:
      - The processes to patch; default all (see I(state)).
      - It does not narrow the store, which is host-wide. With
        C(state=absent) it limits only the reverts outside the store.
    type: list
    elements: int
  store:
    description: The host's patch store (C(hpatch --store)); default hpatch's
      own, C(/var/lib/hpatch/patches).
    type: path
  state_dir:
    description: hpatchd's state directory (C(hpatch --state-dir)), where
      hpatch reads the daemon's view; default hpatch's own, C(/run/hpatch).
    type: path
  trust_dir:
    description: Trusted public keys (C(hpatch --trust)); default hpatch's own,
      C(/etc/hpatch/trusted.d).
    type: path
  timeout:
    description: Milliseconds to retry a function that stays busy (C(--timeout)); in
      check mode C(hpatch check) retries as long (default, as C(hpatch apply)'s, 5000).
    type: int
  allow_active:
    description: Switch even while the old code runs (C(--allow-active)).
    type: bool
    default: false
  on_refuse:
    description: Command hpatch runs for each process it could not patch
      (C(apply --on-refuse)), for example a service restart.
    type: str
  audit_log:
    description: The audit log (C(--audit-log)); default hpatch's own.
    type: path
  hpatch:
    description: The hpatch program; default the one on C(PATH).
    type: path
'''

EXAMPLES = r'''
- name: Install the patch and apply it now to every process of its build
  hpatch.live.patch:
    src: /var/lib/hpatch/incoming/CVE-2026-1234.hpatch

- name: Only install it; hpatchd applies it (policy, maintenance window)
  hpatch.live.patch:
    src: /var/lib/hpatch/incoming/CVE-2026-1234.hpatch
    state: installed

- name: Patch two processes now, restarting what cannot be patched
  hpatch.live.patch:
    src: /var/lib/hpatch/incoming/CVE-2026-1234.hpatch
    pids: [4242, 4243]
    on_refuse: systemctl restart myservice

- name: Take it back out everywhere, store included
  hpatch.live.patch:
    src: /var/lib/hpatch/incoming/CVE-2026-1234.hpatch
    state: absent
'''

RETURN = r'''
patch_id:
  description: The patch's id.
  returned: always
  type: str
installed:
  description: Whether the patch is in the store after the task (in check
    mode, would be).
  returned: always
  type: bool
processes:
  description:
    - One entry per process acted on (in check mode, that would be), with
      hpatch's result and its reason.
    - C(applied) runs give C(ok), C(HP_E_APPLIED), C(HP_E_BUSY) ...; check
      mode gives C(hpatch check)'s C(would apply), C(already applied),
      C(busy), C(refused), C(excluded); C(installed) gives the store's view
      per process (C(applied), C(pending), C(refused) ...); C(absent) gives
      the reverts.
  returned: always
  type: list
  elements: dict
  sample: [{"pid": 4242, "result": "ok", "reason": ""}]
hpatch_rc:
  description:
    - The exit status of the last hpatch command that acted (0 when none
      ran); 3 is "nothing to do".
    - Not named C(rc), which Ansible takes for a failure when non-zero.
  returned: always
  type: int
'''

import json

from ansible.module_utils.basic import AnsibleModule

HP_EXIT_OK = 0
HP_EXIT_ERROR = 1
HP_EXIT_NOTHING = 3
HP_EXIT_NOTARGET = 9
# hpatch apply's --timeout by default (runtime/hpatch.c): check mode asks
# `hpatch check` to retry a busy process as long, so that it says what the
# apply would do (its own default is one look).
HP_APPLY_TIMEOUT_MS = 5000
# hpatch check's per-process results that make the apply fail.
CHECK_FAILS = ('busy', 'refused')


class Hpatch(object):
    """The hpatch command line, with the options every call shares."""

    def __init__(self, module):
        self.module = module
        p = module.params
        self.bin = p['hpatch'] or module.get_bin_path('hpatch', required=True,
                                                      opt_dirs=['/usr/sbin', '/sbin'])
        self.trust = ['--trust', p['trust_dir']] if p['trust_dir'] else []
        self.store = ['--store', p['store']] if p['store'] else []
        self.state_dir = ['--state-dir', p['state_dir']] if p['state_dir'] else []
        self.audit = ['--audit-log', p['audit_log']] if p['audit_log'] else []
        self.switch = []
        if p['timeout'] is not None:
            self.switch += ['--timeout', str(p['timeout'])]
        if p['allow_active']:
            self.switch += ['--allow-active']

    def run(self, args, what):
        """Run hpatch WHAT ARGS --json; return (rc, parsed stdout or None, stderr)."""
        rc, out, err = self.module.run_command([self.bin, what, '--json'] + args)
        try:
            doc = json.loads(out) if out.strip() else None
        except ValueError:
            self.module.fail_json(msg="hpatch %s printed no JSON" % what, hpatch_rc=rc,
                                  stdout=out, stderr=err)
        return rc, doc, err

    def must(self, args, what, **res):
        """Run a read-only command that must succeed; return its document."""
        rc, doc, err = self.run(args, what)
        return self.succeeded(rc, doc, err, what, **res)

    def succeeded(self, rc, doc, err, what, **res):
        """DOC if hpatch WHAT succeeded (RC); else the module fails."""
        if rc != HP_EXIT_OK or doc is None:
            res.update(hpatch_rc=rc, msg="hpatch %s failed (exit %d): %s"
                       % (what, rc, err.strip()))
            res.setdefault('processes', [])
            self.module.fail_json(**res)
        return doc

    def listing(self):
        return self.must(self.store + self.trust + self.state_dir, 'list')

    def status(self):
        """`hpatch status --json`. Processes it cannot read (exit 1, each
        under 'unknown') are warned of, not a failure: a revert must still
        reach those it can; apply, uninstall and revert name them in turn."""
        rc, doc, err = self.run([], 'status')
        if rc == HP_EXIT_ERROR and doc and doc.get('unknown'):
            for u in doc['unknown']:
                self.module.warn("pid %d: hpatch cannot tell which patches it has (%s)"
                                 % (u['pid'], u.get('reason', '')))
            return doc
        return self.succeeded(rc, doc, err, 'status')


def store_entry(listing, patch_id, sequence):
    """The patch's entry in `hpatch list --json` if that very patch is
    installed (same sequence, its file verifying), else None."""
    for e in listing.get('patches', []):
        if (e.get('patch_id') == patch_id and e.get('sequence') == sequence
                and e.get('state') in ('installed', 'superseded')):
            return e
    return None


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
    """Per-process results from hpatch's JSON; if hpatch refused before any
    process (no JSON), every process named gets its message."""
    if doc and 'processes' in doc:
        return [{'pid': p['pid'], 'result': p.get('result', ''),
                 'reason': p.get('reason', '')} for p in doc['processes']]
    reason = err.strip().splitlines()[0] if err.strip() else ''
    return [{'pid': p, 'result': 'refused', 'reason': reason} for p in pids or []]


def describe(store, installed, effect, patch_id, pids):
    """The host as the diff shows it: store membership, then per process."""
    lines = ['store %s: %s\n' % (store or 'default',
                                 patch_id if installed else '(not installed)')]
    for pid in sorted(set(pids)):
        here = patch_id if patch_id in effect.get(pid, []) else '(not applied)'
        lines.append('pid %d: %s\n' % (pid, here))
    return ''.join(lines)


def check_apply(hp, p, patch_id, res):
    """Check mode of `applied`: what `hpatch check` says an apply would do
    now, restricted to p['pids'] if given. Returns the processes."""
    retry = [] if p['timeout'] is not None else ['--timeout', str(HP_APPLY_TIMEOUT_MS)]
    rc, doc, err = hp.run(hp.trust + hp.state_dir + hp.switch + retry + [p['src']], 'check')
    problems = ((doc or {}).get('host') or {}).get('problems', [])
    if doc is None or problems or rc not in (HP_EXIT_OK, HP_EXIT_NOTHING,
                                             HP_EXIT_NOTARGET) and 'processes' not in doc:
        res.update(hpatch_rc=rc, processes=[])
        hp.module.fail_json(msg="hpatch check '%s': this host cannot be patched "
                            "(exit %d): %s" % (patch_id, rc,
                                               '; '.join(problems) or err.strip()),
                            **res)
    procs = [{'pid': q['pid'], 'result': q.get('result', ''), 'reason': q.get('reason', '')}
             for q in doc.get('processes', [])]
    if p['pids'] is not None:
        seen = dict((q['pid'], q) for q in procs)
        procs = [seen.get(pid, {'pid': pid, 'result': 'refused',
                                'reason': 'not a running process of the patch\'s build'})
                 for pid in p['pids']]
    res['hpatch_rc'] = rc
    return procs


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type='path', required=True),
            state=dict(type='str', default='applied',
                       choices=['installed', 'applied', 'absent']),
            pids=dict(type='list', elements='int'),
            store=dict(type='path'),
            state_dir=dict(type='path'),
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
    hp = Hpatch(module)
    check = module.check_mode
    if p['state'] == 'installed' and p['pids'] is not None:
        module.warn("pids has no effect with state=installed: the store is host-wide")

    # The patch's id, verified against the trust store before anything else.
    rc, info, err = hp.run(hp.trust + [p['src']], 'inspect')
    if rc != HP_EXIT_OK or not info:
        module.fail_json(msg="%s: %s" % (p['src'], err.strip()), hpatch_rc=rc,
                         processes=[])
    patch_id, sequence = info['patch_id'], info.get('sequence')
    listing = hp.listing()
    installed = store_entry(listing, patch_id, sequence) is not None
    status = hp.status()
    before = in_effect(status)
    with_patch = [pid for pid, ids in before.items() if patch_id in ids]
    res = dict(patch_id=patch_id, installed=installed, hpatch_rc=0, processes=[],
               changed=False)
    after = before
    shown = list(with_patch) + list(p['pids'] or [])

    if p['state'] in ('installed', 'applied') and not installed:
        res['changed'] = res['installed'] = True
        if not check:
            rc, doc, err = hp.run(hp.store + hp.trust + hp.state_dir + hp.audit
                                  + [p['src']], 'install')
            res['hpatch_rc'] = rc
            if rc not in (HP_EXIT_OK, HP_EXIT_NOTHING):
                res['installed'] = False
                module.fail_json(msg="hpatch install '%s' failed (exit %d): %s"
                                 % (patch_id, rc, err.strip()), **res)
            res['changed'] = rc == HP_EXIT_OK

    if p['state'] == 'installed':
        # What the store's view says of each process of the build.
        entry = store_entry(listing if check else hp.listing(), patch_id, sequence)
        res['processes'] = [{'pid': q['pid'], 'result': q.get('state', ''),
                             'reason': q.get('reason', '')}
                            for q in (entry or {}).get('processes', [])]
    elif p['state'] == 'applied' and check:
        res['processes'] = check_apply(hp, p, patch_id, res)
        would = [q['pid'] for q in res['processes'] if q['result'] == 'would apply']
        res['changed'] = res['changed'] or bool(would)
        shown += [q['pid'] for q in res['processes']]
        after = dict(before)
        for pid in would:
            after[pid] = after.get(pid, []) + [patch_id]
        failing = [q for q in res['processes'] if q['result'] in CHECK_FAILS]
        if failing:
            module.fail_json(msg="hpatch apply '%s' would fail: %s" % (
                patch_id, '; '.join('pid %d: %s: %s' % (q['pid'], q['result'], q['reason'])
                                    for q in failing)), **res)
    elif p['state'] == 'applied':
        pid_args = []
        for pid in p['pids'] or []:
            pid_args += ['-p', str(pid)]
        args = (pid_args or ['--all']) + hp.trust + hp.switch + hp.audit
        if p['on_refuse']:
            args += ['--on-refuse', p['on_refuse']]
        rc, doc, err = hp.run(args + [p['src']], 'apply')
        res['hpatch_rc'] = rc
        res['processes'] = results(doc, err, p['pids'])
        shown += [q['pid'] for q in res['processes']]
        # None running (--all): installed, hpatchd applies it to those to come.
        if rc not in (HP_EXIT_OK, HP_EXIT_NOTHING) and not (
                rc == HP_EXIT_NOTARGET and p['pids'] is None):
            module.fail_json(msg="hpatch apply '%s' failed (exit %d): %s"
                             % (patch_id, rc, err.strip()), **res)
        res['changed'] = res['changed'] or rc == HP_EXIT_OK
    else:
        res['installed'] = False
        uninstall = installed or patch_id in listing.get('uninstalled_pending', [])
        if uninstall and check:
            res['processes'] = [{'pid': pid, 'result': 'would revert', 'reason': ''}
                                for pid in with_patch]
            res['changed'] = True
            after = {}
        elif uninstall:
            rc, doc, err = hp.run(hp.store + hp.trust + hp.switch + hp.audit + [patch_id],
                                  'uninstall')
            res['hpatch_rc'] = rc
            res['processes'] = results(doc, err, [])
            if rc not in (HP_EXIT_OK, HP_EXIT_NOTHING):
                module.fail_json(msg="hpatch uninstall '%s' failed (exit %d): %s"
                                 % (patch_id, rc, err.strip()), **res)
            res['changed'] = rc == HP_EXIT_OK
            status = hp.status()
            after = in_effect(status)
        # Still in effect where applied by hand, outside the store.
        targets = p['pids'] if p['pids'] is not None else list(after)
        todo = [pid for pid in targets if patch_id in after.get(pid, [])]
        over = [pid for pid in todo if newest_active(status, pid) != patch_id]
        if over:
            module.fail_json(msg="pid %s: a newer patch is in effect over '%s'; "
                             "revert it first" % (', '.join(map(str, over)), patch_id),
                             **res)
        if todo and check:
            res['processes'] += [{'pid': pid, 'result': 'would revert', 'reason': ''}
                                 for pid in todo]
            res['changed'] = True
            after = dict((pid, []) for pid in todo)
        elif todo:
            args = hp.switch + hp.audit
            for pid in todo:
                args += ['-p', str(pid)]
            rc, doc, err = hp.run(args, 'revert')
            res['hpatch_rc'] = rc
            res['processes'] += results(doc, err, todo)
            if rc not in (HP_EXIT_OK, HP_EXIT_NOTHING):
                module.fail_json(msg="hpatch revert '%s' failed (exit %d): %s"
                                 % (patch_id, rc, err.strip()), **res)
            res['changed'] = res['changed'] or rc == HP_EXIT_OK

    if module._diff and res['changed']:
        if not check:
            after = in_effect(hp.status())
        res['diff'] = dict(before=describe(p['store'], installed, before, patch_id, shown),
                           after=describe(p['store'], res['installed'], after, patch_id,
                                          shown))
    module.exit_json(**res)


if __name__ == '__main__':
    main()
