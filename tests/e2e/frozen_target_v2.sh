#!/usr/bin/env bash
# frozen_target.sh with cgroup v2's freezer where the host has v1's too:
# v1's keeps a thread from its stop, v2's lets it stop but not run (the
# injected call is what waits then).
HP_TEST_FREEZER=v2 exec bash "$(dirname "$0")/frozen_target.sh"
