#!/usr/bin/env bash
# Runs every test of the workspace against real services on 127.0.0.1.
#
#   scripts/test.sh [cargo test arguments...]   e.g. scripts/test.sh -p kafka-client -- tls
#
# Starts the test environment (scripts/test-env.sh) unless one is already running,
# exports KB_TEST_ENV (the path of its env.json) and runs
# `cargo test --workspace --all-targets`, then (without arguments) the Kerberos tests again
# in a build with the `gssapi` feature (GSSAPI is off by default: it links the system's MIT
# Kerberos); exits with the tests' status.
# An environment started here is stopped on exit (KB_TEST_ENV_KEEP=1 keeps it up for
# a look afterwards); one that was already running is left alone, so a developer
# can keep one up across many runs with `scripts/test-env.sh start`.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ENV_SH=$REPO/scripts/test-env.sh
cd "$REPO"

# shellcheck disable=SC2317  # only called from the EXIT trap
stop_env() {
    if [ "${KB_TEST_ENV_KEEP:-0}" = 1 ]; then
        echo "[test.sh] KB_TEST_ENV_KEEP=1: leaving the test environment running" >&2
    else
        "$ENV_SH" stop || true
    fi
}

if "$ENV_SH" status >/dev/null 2>&1; then
    echo "[test.sh] using the test environment that is already running" >&2
else
    # Set before starting, so that an interrupted start is cleaned up too; INT and
    # TERM become an ordinary exit, which runs the EXIT trap.
    trap stop_env EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    "$ENV_SH" start >/dev/null
fi
KB_TEST_ENV=$("$ENV_SH" env)
export KB_TEST_ENV
echo "[test.sh] KB_TEST_ENV=$KB_TEST_ENV" >&2

status=0
cargo test --workspace --all-targets "$@" || status=$?
if [ "$#" -eq 0 ]; then
    echo "[test.sh] the GSSAPI tests, built with --features gssapi" >&2
    cargo test -p kafka-client --features gssapi --test gssapi --test gssapi_broker \
        --test gssapi_process || status=$?
    cargo test -p backup-core --features gssapi --lib config || status=$?
    cargo test -p kafka-backup --features gssapi --test gssapi || status=$?
fi
exit "$status"
