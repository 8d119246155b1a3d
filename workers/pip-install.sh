#!/bin/sh
# pip install into the image's virtualenv, with the build secrets' pip settings if given:
#   pip-install --dependencies-of pyproject.toml   only [project].dependencies
#   pip-install ARGS...                            pip install ARGS
# The secrets are mounted for one RUN only, so no layer keeps them.
set -eu
if [ -s /run/secrets/pip.conf ]; then export PIP_CONFIG_FILE=/run/secrets/pip.conf; fi
if [ -s /run/secrets/pip-ca.crt ]; then export PIP_CERT=/run/secrets/pip-ca.crt; fi
pip=/opt/graflow/bin/pip
if [ "${1:-}" = "--dependencies-of" ]; then
    /opt/graflow/bin/python -c 'import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["dependencies"]))' "$2" > /tmp/requirements.txt
    exec "$pip" install -r /tmp/requirements.txt
fi
exec "$pip" install "$@"
