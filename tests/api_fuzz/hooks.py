"""Schemathesis hooks for the syva api contract test (tests/api_fuzz.rs).

Adds one check: a rejected request (status >= 400) must not change core's
state. The state is read straight from core over its Unix socket with
`syva ctl --json` (not through the API under test) before and after every
request. Requests run one at a time (--workers 1), so nothing else changes
the state in between.
"""

import json
import os
import subprocess

import schemathesis

SYVA = os.environ["SYVA_FUZZ_SYVA"]
SOCKET = os.environ["SYVA_FUZZ_SOCKET"]

# State read just before the latest request.
_before = {}


def core_state():
    state = {}
    for what in ("zone", "comm", "container"):
        out = subprocess.run(
            [SYVA, "ctl", "--socket", SOCKET, "--json", what, "list"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if out.returncode != 0:
            raise RuntimeError(f"syva ctl {what} list failed: {out.stderr.strip()}")
        state[what] = json.loads(out.stdout)
    return state


@schemathesis.hook
def before_call(context, case, kwargs):
    _before["state"] = core_state()


@schemathesis.check
def rejected_requests_change_nothing(ctx, response, case):
    """A 4xx or 5xx answer leaves zones, pairs and containers as they were."""
    if response.status_code < 400 or "state" not in _before:
        return None
    after = core_state()
    if after != _before["state"]:
        raise AssertionError(
            f"{case.method} {case.formatted_path} was rejected with "
            f"{response.status_code} but changed core's state:\n"
            f"before: {json.dumps(_before['state'], sort_keys=True)}\n"
            f"after:  {json.dumps(after, sort_keys=True)}"
        )
    return None
