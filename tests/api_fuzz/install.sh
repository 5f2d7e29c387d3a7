#!/bin/sh
# Install what the API contract fuzz test (tests/api_fuzz.rs) needs:
# schemathesis, pinned in requirements.txt, in a virtual environment at
# target/api-fuzz-venv (SYVA_FUZZ_VENV to change it), which the test uses
# when it exists. Safe to run again: it only installs what is missing.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=${SYVA_FUZZ_VENV:-$root/target/api-fuzz-venv}
if [ ! -x "$venv/bin/python" ]; then
	"${PYTHON:-python3}" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --disable-pip-version-check --quiet -r "$here/requirements.txt"
echo "schemathesis installed in $venv"
