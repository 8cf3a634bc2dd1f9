#!/usr/bin/python3
# ansible-test, with the Python packages Debian installs in place of PyPI's.
#
# `ansible-test sanity` runs each Python-based test (pep8, pylint,
# yamllint, validate-modules, ansible-doc, runtime-metadata) in a
# virtualenv of its own and pip-installs pinned versions from PyPI into it:
# no network, no test. Here each such virtualenv sees the system's
# packages instead (python3-pycodestyle, pylint, yamllint,
# python3-voluptuous, python3-jinja2, python3-yaml, installed by
# scripts/setup.sh) and nothing is installed. Debian's versions are
# close to the pins, not equal (pylint 2.16 for 2.15.5, pycodestyle 2.10
# for 2.9.1, yamllint 1.29 for 1.28, voluptuous 0.12 for 0.13): a check
# they add or drop may differ from upstream's CI, never silently skip.
# This wraps ansible-test's own entry point; it relies on two of its
# internal functions, and fails loudly if they move.
import sys

from ansible_test._internal import main
from ansible_test._internal.commands import sanity

create_virtual_environment = sanity.create_virtual_environment


def with_system_packages(args, python, path, system_site_packages=False, pip=False):
    return create_virtual_environment(args, python, path, True, pip)


def no_pip(args, python, commands, connection):
    return None


sanity.create_virtual_environment = with_system_packages
sanity.run_pip = no_pip
main(sys.argv)
