#!/usr/bin/env bash
# Benchmarks. Makes sure the Python tools and the nisshi broker are installed (via
# scripts/test-env.sh), builds kafka-backup (release; or takes KB_BINARY), and runs one of:
#
#   bench/run.sh [--records N] [--repeat N]
#       bench/backup_bench.py: backup (none, zstd) against a librdkafka consumer drain.
#   bench/run.sh --restore [--records N] [--repeat N]
#       bench/restore_bench.py: restore against a librdkafka idempotent producer.
#   bench/run.sh --encryption [--records N] [--repeat N]
#       bench/encryption_bench.py: backup and restore encrypted and signed against the clear.
#   bench/run.sh --compare [--records N] [--repeat N] [--timeout S]
#       bench/compare_bench.py: the side-by-side table for the README. In interleaved rounds
#       (drain, OSO none, ours none, OSO zstd, ours zstd, producer, OSO restore, our restore):
#       the librdkafka consumer drain and idempotent producer baselines, OSO's kafka-backup
#       and kafka-backup, backup with compression none and zstd and restore, each verified
#       (backups hold every record; restores, into a fresh broker, counted by a consumer).
#       Medians of N rounds (default 3) of wall time, CPU (user + system) and peak memory,
#       with the ratios and their targets. Default 1,000,000 records of ~1 KiB, 8 partitions.
#   bench/run.sh --partitions [--points 100x20,500x20] [--per-partition N] [--repeat N]
#                             [--oso-timeout S]
#       bench/partitions_bench.py: many partitions (default 2,000 = 100 topics x 20 and
#       10,000 = 500 topics x 20, 20 records each): backup (zstd) and restore time, CPU and
#       peak memory per run for kafka-backup, OSO's (killed after --oso-timeout, default
#       300 s) and the librdkafka baselines.
#
# OSO's kafka-backup is used when present (OSO_BINARY, default ../shared/tools/oso-kafka-backup
# relative to the repository); its rows are skipped with a note when absent.
#
# Environment:
#   KB_BINARY        the kafka-backup binary to measure; unset: `cargo build --release`
#   OSO_BINARY       OSO's kafka-backup binary (default ../shared/tools/oso-kafka-backup)
#   KB_BENCH_PYTHON  a Python with confluent-kafka; set together with NISSHI_BIN (default
#                    ../shared/tools/nisshi when present) to skip scripts/test-env.sh
#   NISSHI_BIN       the nisshi broker binary
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

PY=${KB_BENCH_PYTHON:-}
NISSHI=${NISSHI_BIN:-}
if [ -z "$NISSHI" ] && [ -x "$REPO/../shared/tools/nisshi" ]; then
    NISSHI=$REPO/../shared/tools/nisshi
fi
if [ -z "$PY" ] || [ -z "$NISSHI" ]; then
    started_env=0
    if ! scripts/test-env.sh status >/dev/null 2>&1; then
        scripts/test-env.sh start >/dev/null
        started_env=1
    fi
    ENV_JSON=$(scripts/test-env.sh env)
    PY=$(sed -n 's/.*"venv_python": *"\([^"]*\)".*/\1/p' "$ENV_JSON" | head -n 1)
    NISSHI=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["nisshi"]["bin"])' "$ENV_JSON")
    if [ "$started_env" = 1 ]; then scripts/test-env.sh stop >/dev/null; fi
fi

if [ -n "${KB_BINARY:-}" ]; then
    BINARY=$KB_BINARY
    [ -x "$BINARY" ] || { echo "KB_BINARY=$BINARY is not an executable" >&2; exit 2; }
else
    cargo build --release -q -p kafka-backup
    BINARY=$REPO/target/release/kafka-backup
fi
OSO=${OSO_BINARY:-$REPO/../shared/tools/oso-kafka-backup}

SCRIPT=bench/backup_bench.py
EXTRA=()
case "${1:-}" in
    --restore) SCRIPT=bench/restore_bench.py; shift ;;
    --encryption) SCRIPT=bench/encryption_bench.py; shift ;;
    --compare) SCRIPT=bench/compare_bench.py; EXTRA=(--oso "$OSO"); shift ;;
    --partitions) SCRIPT=bench/partitions_bench.py; EXTRA=(--oso "$OSO"); shift ;;
esac
"$PY" "$SCRIPT" --nisshi "$NISSHI" --binary "$BINARY" "${EXTRA[@]}" "$@"
