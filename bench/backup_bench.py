"""Backup throughput benchmark: kafka-backup against a librdkafka consumer on the same data.

Run through bench/run.sh, which supplies the tools. In one run it:
  1. starts its own nisshi broker on the memory engine (fast; see the watermark caveat below),
  2. produces RECORDS JSON-like records of about 1 KiB over 8 partitions (compressing about 3:1),
  3. times a confluent-kafka consumer draining them (the baseline),
  4. times `kafka-backup backup` (snapshot, filesystem storage) with compression none and zstd,
and prints MB/s of record payload (key + value bytes) for each, the ratio to the baseline, and
peak memory (maximum resident set size from GNU time).

The memory engine reports a wrong high watermark when a partition's last batch holds more than
one record, so each partition ends with a one-record batch: produce the bulk, flush, then one
record per partition, flush.
"""
import argparse
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS = 8
WORDS = ("checkout", "payment", "refund", "login", "logout", "search", "view", "cart",
         "shipping", "invoice", "approved", "declined", "pending", "retry", "eu-west-1",
         "us-east-1", "mobile", "desktop", "premium", "standard", "card", "wallet")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_broker(nisshi, workdir):
    """Starts a nisshi broker on the memory engine; returns the process and its address."""
    port = free_port()
    broker = subprocess.Popen(
        [nisshi, "broker", "--listener-url", f"tcp://127.0.0.1:{port}",
         "--advertised-listener-url", f"tcp://localhost:{port}",
         "--storage-engine", "memory://bench/", "--silent"],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return broker, f"127.0.0.1:{port}"
        except OSError:
            if time.time() > deadline:
                broker.terminate()
                raise SystemExit("the benchmark broker did not start")
            time.sleep(0.05)


def event(rng, i):
    """A JSON event of about 1 KiB: repetitive structure and vocabulary (as real events are),
    with enough random content that it compresses about 3:1."""
    base = {
        "event_id": f"{rng.getrandbits(64):016x}-{i:09d}",
        "type": rng.choice(WORDS),
        "ts": 1_700_000_000_000 + i * 13,
        "user": {"id": rng.randrange(1_000_000), "segment": rng.choice(WORDS),
                 "region": rng.choice(WORDS), "session": f"{rng.getrandbits(96):024x}"},
        "amount": round(rng.random() * 1000, 2),
        "currency": rng.choice(("EUR", "USD", "GBP")),
        "items": [{"sku": f"SKU-{rng.randrange(100000):06d}", "qty": rng.randrange(1, 5),
                   "price": round(rng.random() * 200, 2), "tag": rng.choice(WORDS)}
                  for _ in range(4)],
        "trace": " ".join(rng.choice(WORDS) for _ in range(20)),
        "nonce": os.urandom(96).hex(),
    }
    text = json.dumps(base, separators=(",", ":"))
    pad = 1024 - len(text) - 10
    if pad > 0:
        base["note"] = " ".join(rng.choice(WORDS) for _ in range(pad // 8))[:pad]
    return json.dumps(base, separators=(",", ":")).encode()


def produce(bootstrap, topic, count):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
        f.result()
    rng = random.Random(42)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.size": 1_000_000,
                  "compression.type": "none", "queue.buffering.max.messages": 500_000})
    payload = 0
    for i in range(count):
        key = f"user-{i % 50_000}".encode()
        value = event(rng, i)
        payload += len(key) + len(value)
        while True:
            try:
                p.produce(topic, key=key, value=value, partition=i % PARTITIONS)
                break
            except BufferError:
                p.poll(0.1)
        if i % 20_000 == 0:
            p.poll(0)
    p.flush()
    for part in range(PARTITIONS):
        p.produce(topic, key=b"end", value=b"end", partition=part)
        payload += 6
    p.flush()
    return payload


def drain(bootstrap, topic, expected):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-baseline-{time.time()}",
                  "enable.auto.commit": False, "fetch.max.bytes": 52_428_800,
                  "max.partition.fetch.bytes": 10_485_760})
    c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    n = 0
    start = time.perf_counter()
    first = None
    while n < expected:
        # consume() returns when it has num_messages or when the timeout passes: asking for
        # more than remain made the last call wait out the whole timeout (5 s counted against
        # the baseline).
        msgs = c.consume(min(10_000, expected - n), timeout=5)
        if not msgs:
            raise SystemExit(f"baseline consumer stalled at {n} of {expected} records")
        if first is None:
            first = time.perf_counter()
        for m in msgs:
            if m.error():
                raise SystemExit(str(m.error()))
        n += len(msgs)
    end = time.perf_counter()
    c.close()
    return end - start, end - first


def run_backup(binary, bootstrap, topic, compression, workdir, attempt):
    # A fresh store and backup id per run, so no run resumes from another.
    store = os.path.join(workdir, f"store-{compression}-{attempt}")
    config = os.path.join(workdir, f"backup-{compression}-{attempt}.yaml")
    with open(config, "w") as f:
        f.write(f"""mode: backup
backup_id: bench-{compression}-{attempt}
source:
  bootstrap_servers: ["{bootstrap}"]
  topics:
    include: ["{topic}"]
storage:
  backend: filesystem
  path: {store}
backup:
  compression: {compression}
  consumer_group_snapshot: false
""")
    return run_timed(binary, "backup", config)


def run_timed(binary, command, config):
    """Runs `kafka-backup COMMAND --config CONFIG --format json` under GNU time; returns
    (seconds, peak RSS in KiB, the JSON report)."""
    elapsed, _cpu, rss_kb, report = run_measured(binary, command, config)
    return elapsed, rss_kb, report


def run_measured(binary, command, config):
    """Like run_timed, with the CPU time (user + system seconds) of the kafka-backup process:
    (wall seconds, CPU seconds, peak RSS in KiB, the JSON report)."""
    start = time.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-v", binary, "--log-level", "warn", command,
                          "--config", config, "--format", "json"],
                         capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"kafka-backup {command} failed ({out.returncode}):\n{out.stderr}")

    def field(name):
        return float(re.search(name + r": ([\d.]+)", out.stderr).group(1))

    cpu = field(r"User time \(seconds\)") + field(r"System time \(seconds\)")
    rss_kb = int(field(r"Maximum resident set size \(kbytes\)"))
    return elapsed, cpu, rss_kb, json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nisshi", required=True)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of each measurement; the median is reported (this machine is noisy)")
    args = ap.parse_args()

    workdir = tempfile.mkdtemp(prefix="kb-bench-")
    broker, bootstrap = start_broker(args.nisshi, workdir)
    try:
        topic = "bench-events"
        total = args.records + PARTITIONS
        print(f"producing {args.records:,} records over {PARTITIONS} partitions ...", flush=True)
        t0 = time.perf_counter()
        payload = produce(bootstrap, topic, args.records)
        print(f"  produced {payload / 1e6:,.0f} MB of payload in {time.perf_counter() - t0:.1f} s")

        def median(values):
            return sorted(values)[len(values) // 2]

        drains = [drain(bootstrap, topic, total) for _ in range(args.repeat)]
        base_runs = [d[0] for d in drains]
        warm_runs = [d[1] for d in drains]
        base = median(base_runs)
        rows = [("confluent-kafka consumer (baseline)", base, None, None, base_runs),
                ("  the same, timed from its first record", median(warm_runs), None, None,
                 warm_runs)]
        for compression in ("none", "zstd"):
            runs = []
            for attempt in range(args.repeat):
                elapsed, rss_kb, report = run_backup(args.binary, bootstrap, topic, compression,
                                                     workdir, attempt)
                if report["records"] < total:
                    raise SystemExit(f"backup stored {report['records']} of {total} records")
                runs.append((elapsed, rss_kb, report))
            times = [r[0] for r in runs]
            elapsed = median(times)
            rss_kb = max(r[1] for r in runs)
            rows.append((f"kafka-backup backup, compression {compression}", elapsed, rss_kb,
                         runs[0][2], times))
        print()
        print(f"{'':44} {'time s':>8} {'MB/s':>8} {'vs base':>8} {'peak MiB':>9} {'stored MB':>10}  runs (s)")
        for name, elapsed, rss_kb, report, times in rows:
            mbs = payload / elapsed / 1e6
            ratio = base / elapsed
            rss = f"{rss_kb / 1024:.0f}" if rss_kb else "-"
            stored = f"{report['bytes_written'] / 1e6:,.0f}" if report else "-"
            spread = " ".join(f"{t:.2f}" for t in times)
            print(f"{name:44} {elapsed:8.2f} {mbs:8.1f} {ratio:8.2f} {rss:>9} {stored:>10}  {spread}")
        print()
        print("MB/s is record payload (key + value) per second of wall time, the same measure for")
        print("every row; 'vs base' is the baseline's time divided by the row's time. Times are")
        print(f"medians of {args.repeat} runs; peak memory is the largest of them.")
        print("Targets: compression none >= 0.80 of the baseline; peak memory < 256 MiB.")
    finally:
        broker.terminate()
        broker.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
