#!/usr/bin/env bash
# Local end-to-end demo on 127.0.0.1: starts local brokers (scripts/test-env.sh), builds
# kafka-backup, runs `kafka-backup check` against a PLAINTEXT broker and a SASL_SSL broker
# (TLS + SCRAM-SHA-512), then the whole story on a local filesystem store: produce sample data
# and position a consumer group with confluent-kafka, make an age key pair and a signing key,
# back up encrypted to the age recipient and signed (twice, to show that the second run
# resumes), validate, list and describe the backup, plan and run a restore under a new topic
# name, show with confluent-kafka that the data and the group's position match, and show that
# a segment planted in the store is refused.
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

"$PY" - "$(field brokers.plaintext)" "$TOPIC" <<'PYTHON'
from confluent_kafka import Consumer, TopicPartition
import sys
# A consumer group "demo-billing" that has read part of each partition.
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "demo-billing", "enable.auto.commit": False})
c.commit(offsets=[TopicPartition(sys.argv[2], p, o) for p, o in ((0, 700), (1, 900), (2, 1100))],
         asynchronous=False)
c.close()
print("consumer group demo-billing committed at offsets 700, 900 and 1100")
PYTHON

say "kafka-backup keys generate   (an age key pair for encryption, an Ed25519 key for signing)"
"$BIN" keys generate --type age --out "$WORK/restore.agekey"
"$BIN" keys generate --type signing --out "$WORK/signing.key"

# The backup host gets the age *recipient* (a public key: it can encrypt, never decrypt) and
# the signing key; the restore side gets the age identity and the signing key's public half.
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
  encryption:
    key_provider: public-key
    recipients_file: $WORK/restore.agekey.pub
  signing_key: $WORK/signing.key
YAML

say "kafka-backup backup --config backup.yaml   (the local test broker's sqlite engine is slow; bench/run.sh measures throughput)"
"$BIN" --log-level warn backup --config "$WORK/backup.yaml"
say "What storage now holds"
(cd "$WORK/store" && find . -type f | sort | sed 's/^\.\///' |
    sed -E 's/-[0-9a-f]{64}\.[A-Za-z0-9_-]{86}\.(kbseg|json)$/-<sha256>.<signature>.\1/')

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

RESTORED="$TOPIC-restored"
cat >"$WORK/restore.yaml" <<YAML
mode: restore
backup_id: demo-orders
target:
  bootstrap_servers: ["$(field brokers.plaintext)"]
storage:
  backend: filesystem
  path: $WORK/store
restore:
  topic_mapping:
    $TOPIC: $RESTORED
  consumer_groups:
    include: ["demo-billing"]
  encryption:
    key_provider: public-key
    identity_files: [$WORK/restore.agekey]
  verify_key: $WORK/signing.key.pub
YAML

say "kafka-backup validate --deep   (storage access only: signatures, chain, hashes, CRCs, offsets, every record decrypted and decoded)"
"$BIN" --log-level warn validate --config "$WORK/restore.yaml" --deep

say "The backup host holds only the public key: it cannot decrypt its own backup"
"$BIN" --log-level warn validate --config "$WORK/backup.yaml" --deep | grep -E "^(Result|Encrypted|  error)" || true

say "kafka-backup list, then describe"
"$BIN" --log-level warn list --config "$WORK/restore.yaml"
echo
"$BIN" --log-level warn describe --config "$WORK/restore.yaml"

say "kafka-backup restore --dry-run   (the plan: nothing is written)"
cat "$WORK/restore.yaml"
echo
"$BIN" --log-level warn restore --config "$WORK/restore.yaml" --dry-run

say "kafka-backup restore   (into $RESTORED, moving consumer group demo-billing)"
"$BIN" --log-level warn restore --config "$WORK/restore.yaml"

say "Checking with confluent-kafka: the same records, and the group resumes at the same records"
"$PY" - "$(field brokers.plaintext)" "$TOPIC" "$RESTORED" <<'PYTHON'
import sys, time
from confluent_kafka import Consumer, TopicPartition
bootstrap, source, restored = sys.argv[1:4]

def read(topic, group=None):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group or f"demo-check-{time.time()}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    per_partition = {}
    for p in range(3):
        high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        start = c.committed([TopicPartition(topic, p)], timeout=10)[0].offset if group else 0
        c.assign([TopicPartition(topic, p, start)])
        got = []
        while start + len(got) < high:
            m = c.poll(5)
            if m is None:
                break
            got.append((m.key(), m.value(), m.headers(), m.timestamp()))
        per_partition[p] = (start, got)
    c.close()
    return per_partition

a, b = read(source), read(restored)
same = all(a[p][1] == b[p][1] for p in range(3))
total = sum(len(a[p][1]) for p in range(3))
print(f"records: {total} in {source}, {sum(len(b[p][1]) for p in range(3))} in {restored}: "
      f"{'identical (keys, values, headers, timestamps, order per partition)' if same else 'DIFFERENT'}")
ga, gb = read(source, "demo-billing"), read(restored, "demo-billing")
for p in range(3):
    (sa, ra), (sb, rb) = ga[p], gb[p]
    print(f"demo-billing partition {p}: source offset {sa} next key {ra[0][0].decode() if ra else '-'}"
          f" | restored offset {sb} next key {rb[0][0].decode() if rb else '-'}")
if not same or any(ga[p][1] != gb[p][1] for p in range(3)):
    raise SystemExit("MISMATCH")
PYTHON

say "kafka-backup offsets show   (the source -> target offset map and translated group offsets)"
"$BIN" --log-level warn offsets show --config "$WORK/restore.yaml"

say "An attacker with write access to the store plants a segment: validate and restore refuse it"
SEGMENT=$(cd "$WORK/store" && find . -name '*.kbseg' | sort | head -n 1)
PARTITION_DIR=$(dirname "$SEGMENT")
# A copy under a well-formed name past the partition's end, without a valid signature.
PLANTED="$PARTITION_DIR/00000000000001000000-00000000000001000999-$(sha256sum "$WORK/store/$SEGMENT" | cut -c1-64).kbseg"
cp "$WORK/store/$SEGMENT" "$WORK/store/$PLANTED"
"$BIN" --log-level warn validate --config "$WORK/restore.yaml" | grep -E "^(Result|  error)" || true
sed -i "s/$RESTORED/$RESTORED-2/" "$WORK/restore.yaml"
echo "restore exit code: $( ("$BIN" --log-level error restore --config "$WORK/restore.yaml" >/dev/null 2>&1); echo $?)"

say "A wrong password is a clear error with exit code $( (KAFKA_PASSWORD=wrong "$BIN" check --config "$WORK/secure.yaml" >/dev/null 2>&1); echo $?)"
KAFKA_PASSWORD=wrong "$BIN" check --config "$WORK/secure.yaml" 2>&1 | grep -v INFO || true
rm -rf "$WORK"
