#!/usr/bin/env bash
# Local end-to-end demo on 127.0.0.1: starts local brokers (scripts/test-env.sh), builds
# kafka-backup, runs `kafka-backup check` against a PLAINTEXT broker and a SASL_SSL broker
# (TLS + SCRAM-SHA-512), then produces sample data with confluent-kafka and backs it up to a
# local directory over SASL_SSL, twice, to show that the second run resumes.
#
#   scripts/demo.sh          # KB_DEMO_KEEP=1 leaves the brokers running afterwards
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ENV_SH=$REPO/scripts/test-env.sh
cd "$REPO"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# shellcheck disable=SC2317  # only called from the EXIT trap
cleanup() {
    [ "${KB_DEMO_KEEP:-0}" = 1 ] || "$ENV_SH" stop >/dev/null 2>&1 || true
}

if ! "$ENV_SH" status >/dev/null 2>&1; then
    trap cleanup EXIT
    say "Starting local brokers (first run installs stunnel4 and a Python venv: about a minute)"
    "$ENV_SH" start >/dev/null
fi
ENV_JSON=$("$ENV_SH" env)
field() { "$REPO/.test-env/venv/bin/python" -c 'import json,sys; d=json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): d=d[k]
print(d)' "$ENV_JSON" "$1"; }

say "Building kafka-backup"
cargo build -q -p kafka-backup
BIN=$REPO/target/debug/kafka-backup

WORK=$(mktemp -d)
cat >"$WORK/plaintext.yaml" <<YAML
mode: backup
backup_id: demo
source:
  bootstrap_servers: ["$(field brokers.plaintext)"]
YAML

# The password is not in the file: it is substituted from the environment at load time.
cat >"$WORK/secure.yaml" <<YAML
mode: backup
backup_id: demo-secure
source:
  bootstrap_servers: ["$(field brokers.sasl_ssl)"]
  security:
    security_protocol: SASL_SSL
    sasl_mechanism: SCRAM-SHA-512
    sasl_username: $(field scram.sha512.username)
    sasl_password: \${KAFKA_PASSWORD}
    ssl_ca_location: $(field tls.ca)
YAML

say "kafka-backup check --config plaintext.yaml"
"$BIN" check --config "$WORK/plaintext.yaml"

say "kafka-backup check --config secure.yaml   (TLS + SCRAM-SHA-512)"
cat "$WORK/secure.yaml"
echo
KAFKA_PASSWORD=$(field scram.sha512.password) "$BIN" check --config "$WORK/secure.yaml"

PY="$REPO/.test-env/venv/bin/python"
TOPIC="demo-orders-$(date +%s)"
say "Producing 5,000 sample records to $TOPIC (3 partitions) with confluent-kafka"
"$PY" "$REPO/crates/kafka-backup/tests/fixtures/fidelity.py" bulk "$(field brokers.plaintext)" "$TOPIC" 5000 3 >/dev/null

cat >"$WORK/backup.yaml" <<YAML
mode: backup
backup_id: demo-orders
source:
  bootstrap_servers: ["$(field brokers.plaintext)"]
  topics:
    include: ["$TOPIC"]
storage:
  backend: filesystem
  path: $WORK/store
backup:
  compression: zstd
YAML

say "kafka-backup backup --config backup.yaml   (the local test broker's sqlite engine is slow; bench/run.sh measures throughput)"
"$BIN" --log-level warn backup --config "$WORK/backup.yaml"
say "What storage now holds"
(cd "$WORK/store" && find . -type f | sort | sed 's/^\.\///' | sed 's/-[0-9a-f]\{64\}\.kbseg$/-<sha256>.kbseg/')

"$PY" - "$(field brokers.plaintext)" "$TOPIC" <<'PYTHON'
import sys
from confluent_kafka import Producer
p = Producer({"bootstrap.servers": sys.argv[1]})
for i in range(500):
    p.produce(sys.argv[2], key=b"late-%d" % i, value=b"more", partition=i % 3)
p.flush()
PYTHON
say "500 more records, then the same command again: it resumes where the first run ended"
"$BIN" --log-level warn backup --config "$WORK/backup.yaml"

say "A wrong password is a clear error with exit code $( (KAFKA_PASSWORD=wrong "$BIN" check --config "$WORK/secure.yaml" >/dev/null 2>&1); echo $?)"
KAFKA_PASSWORD=wrong "$BIN" check --config "$WORK/secure.yaml" 2>&1 | grep -v INFO || true
rm -rf "$WORK"
