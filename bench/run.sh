#!/usr/bin/env bash
# Benchmarks: builds kafka-backup (release), makes sure the Python tools and the nisshi broker
# are installed (via scripts/test-env.sh), and runs bench/backup_bench.py (backup against a
# librdkafka consumer), with --restore first, bench/restore_bench.py (restore against a
# librdkafka producer), or with --encryption first, bench/encryption_bench.py (backup and
# restore encrypted and signed against the same in the clear).
#
#   bench/run.sh [--restore | --encryption] [--records N] [--repeat N]
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

started_env=0
if ! scripts/test-env.sh status >/dev/null 2>&1; then
    scripts/test-env.sh start >/dev/null
    started_env=1
fi
ENV_JSON=$(scripts/test-env.sh env)
PY=$(sed -n 's/.*"venv_python": *"\([^"]*\)".*/\1/p' "$ENV_JSON" | head -n 1)
NISSHI=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["nisshi"]["bin"])' "$ENV_JSON")
[ "$started_env" = 1 ] && scripts/test-env.sh stop >/dev/null

cargo build --release -q -p kafka-backup
SCRIPT=bench/backup_bench.py
case "${1:-}" in
    --restore) SCRIPT=bench/restore_bench.py; shift ;;
    --encryption) SCRIPT=bench/encryption_bench.py; shift ;;
esac
"$PY" "$SCRIPT" --nisshi "$NISSHI" --binary "$REPO/target/release/kafka-backup" "$@"
