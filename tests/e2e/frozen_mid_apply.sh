#!/usr/bin/env bash
# A target frozen (docker pause, systemctl freeze) while hpatch holds it
# stopped, between two of the system calls it injects (mmap, then
# mprotect, which runs where the target has libgcc_s loaded, for the
# unwind registration's writes): v1's freezer freezes it where it stops for hpatch, and once
# resumed for the next call it runs nothing, and stops for nothing, until
# thawed; by then hpatch has exited and the kernel let it go inside
# hpatch's call, with hpatch's registers and every signal blocked (seen:
# killed by the step's SIGTRAP as it was thawed). hpatch must not resume a
# frozen thread for a call: busy (exit 4), and thawed, the target runs on
# unharmed, its own mask and registers back.
. "$(dirname "$0")/lib.bash"
require_ptrace

freezer_cgroup
svc_and_patch unwinder
join "$pid"
frozen_mid_apply
finish
