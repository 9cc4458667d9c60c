"""Restore throughput benchmark: kafka-backup restore against a librdkafka producer writing the
same records.

Run through bench/run.sh --restore, which supplies the tools. In one run it:
  1. starts its own nisshi broker on the memory engine,
  2. generates RECORDS JSON-like records of about 1 KiB (in memory, before any timing),
  3. times a confluent-kafka producer (idempotent, acks=all, as the restore) writing them over
     8 partitions into a new topic: the baseline, repeated,
  4. backs the first baseline topic up to a filesystem store (zstd, the default; not timed),
  5. times `kafka-backup restore` of that backup into a new topic, repeated, taking turns with
     the baseline runs (the broker slows as it fills, so neither side gets the emptier broker),
and prints MB/s of record payload (key + value bytes), the ratio to the baseline, and the
restore's peak memory (maximum resident set size from GNU time).
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import tempfile
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from backup_bench import PARTITIONS, event, run_timed, start_broker


def generate(count):
    rng = random.Random(42)
    records = []
    payload = 0
    for i in range(count):
        key = f"user-{i % 50_000}".encode()
        value = event(rng, i)
        payload += len(key) + len(value)
        records.append((key, value, i % PARTITIONS))
    return records, payload


def produce_timed(bootstrap, topic, records):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
        f.result()
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.size": 1_000_000,
                  "compression.type": "none", "enable.idempotence": True,
                  "queue.buffering.max.messages": 500_000})
    start = time.perf_counter()
    for i, (key, value, part) in enumerate(records):
        while True:
            try:
                p.produce(topic, key=key, value=value, partition=part)
                break
            except BufferError:
                p.poll(0.1)
        if i % 20_000 == 0:
            p.poll(0)
    if p.flush(120) != 0:
        raise SystemExit("the baseline producer did not deliver everything")
    # The memory engine's watermark caveat (see backup_bench.py): end with one-record batches.
    for part in range(PARTITIONS):
        p.produce(topic, key=b"end", value=b"end", partition=part)
    p.flush(30)
    return time.perf_counter() - start


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def back_up(binary, bootstrap, workdir, store):
    """Backs the first baseline topic up with the defaults (zstd); returns the bytes stored."""
    config = os.path.join(workdir, "backup.yaml")
    write(config, f"""mode: backup
backup_id: bench
source:
  bootstrap_servers: ["{bootstrap}"]
  topics:
    include: ["bench-produced-0"]
storage:
  backend: filesystem
  path: {store}
backup:
  consumer_group_snapshot: false
""")
    out = subprocess.run([binary, "--log-level", "warn", "backup", "--config", config,
                          "--format", "json"], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"backup failed ({out.returncode}):\n{out.stderr}")
    return json.loads(out.stdout)["bytes_written"]


def restore_timed(binary, bootstrap, workdir, store, attempt, expected):
    """Restores the backup into a new topic; returns (seconds, peak RSS in KiB)."""
    config = os.path.join(workdir, f"restore-{attempt}.yaml")
    write(config, f"""mode: restore
backup_id: bench
target:
  bootstrap_servers: ["{bootstrap}"]
storage:
  backend: filesystem
  path: {store}
restore:
  topic_mapping:
    bench-produced-0: bench-restored-{attempt}
  restore_id: bench-{attempt}
  consumer_groups:
    enabled: false
""")
    elapsed, rss, report = run_timed(binary, "restore", config)
    if report["records_written"] < expected:
        raise SystemExit(f"restore wrote {report['records_written']} of {expected}")
    return elapsed, rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nisshi", required=True)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of each measurement; the median is reported (this machine is noisy)")
    args = ap.parse_args()

    workdir = tempfile.mkdtemp(prefix="kb-restore-bench-")
    broker, bootstrap = start_broker(args.nisshi, workdir)
    try:
        print(f"generating {args.records:,} records ...", flush=True)
        records, payload = generate(args.records)
        print(f"  {payload / 1e6:,.0f} MB of payload")

        # The broker's memory engine slows as it fills, so baseline and restore runs take
        # turns (baseline, restore, baseline, ...) rather than all of one after the other.
        store = os.path.join(workdir, "store")
        base_runs, runs, stored = [], [], None
        for attempt in range(args.repeat):
            base_runs.append(produce_timed(bootstrap, f"bench-produced-{attempt}", records))
            print(f"  baseline producer run {attempt + 1}: {base_runs[-1]:.2f} s", flush=True)
            if stored is None:
                stored = back_up(args.binary, bootstrap, workdir, store)
            runs.append(restore_timed(args.binary, bootstrap, workdir, store, attempt,
                                      args.records))
            print(f"  restore run {attempt + 1}: {runs[-1][0]:.2f} s, "
                  f"peak {runs[-1][1] / 1024:.0f} MiB", flush=True)
        del records

        def median(values):
            return sorted(values)[len(values) // 2]

        base = median(base_runs)
        restore = median([r[0] for r in runs])
        peak = max(r[1] for r in runs) / 1024
        print()
        print(f"{'':40} {'time s':>8} {'MB/s':>8} {'vs base':>8} {'peak MiB':>9}  runs (s)")
        print(f"{'confluent-kafka producer (baseline)':40} {base:8.2f} {payload / base / 1e6:8.1f} "
              f"{1.0:8.2f} {'-':>9}  {' '.join(f'{t:.2f}' for t in base_runs)}")
        print(f"{'kafka-backup restore (from zstd store)':40} {restore:8.2f} "
              f"{payload / restore / 1e6:8.1f} {base / restore:8.2f} {peak:9.0f}  "
              f"{' '.join(f'{r[0]:.2f}' for r in runs)}")
        print()
        print(f"Backup read: {stored / 1e6:,.0f} MB stored. MB/s is record payload per second of wall")
        print("time; the restore's time includes its integrity pass over every segment. Times are")
        print(f"medians of {args.repeat} runs. Targets: restore >= 1.00 of the baseline; peak < 256 MiB.")
    finally:
        broker.terminate()
        broker.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
