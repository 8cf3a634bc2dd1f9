#!/usr/bin/env bash
# frozen_mid_apply.sh with cgroup v2's freezer where the host has v1's
# too: v2's lets a thread frozen between two calls stop for us, so no
# look precedes each call; the step that does not run is found frozen.
HP_TEST_FREEZER=v2 exec bash "$(dirname "$0")/frozen_mid_apply.sh"
