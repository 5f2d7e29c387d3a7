#!/bin/sh
# Install the Python tools the API contract fuzz test needs (schemathesis).
# CI runs this once before `cargo test --release`.
set -eu
here=$(dirname "$0")
exec "${PYTHON:-python3}" -m pip install --disable-pip-version-check -r "$here/requirements.txt"
