"""Side-by-side benchmark: kafka-backup against the librdkafka baselines and OSO's kafka-backup,
in the same run, taking turns.

Run through `bench/run.sh --compare`, which supplies the tools. In one run it:
  1. writes RECORDS JSON-like records of about 1 KiB (see backup_bench.py) over 8 partitions to
     a file, and produces them to its own nisshi broker (memory engine), ending each partition
     with a one-record batch (the memory engine's watermark caveat, see backup_bench.py),
  2. then, REPEAT rounds, each running every measurement once in this order:
       librdkafka consumer drain (baseline) | OSO backup none | kafka-backup backup none |
       OSO backup zstd | kafka-backup backup zstd | librdkafka idempotent producer (baseline) |
       OSO restore | kafka-backup restore
     Every backup is a one-shot snapshot to a fresh filesystem store; it is verified to hold
     every record (kafka-backup: the records of its JSON report; OSO: the record counts of its
     manifest). Each restore (and the producer baseline) writes into a fresh broker, from the
     same tool's zstd backup of that round; afterwards, outside the timed part, a consumer counts
     the records in the target, which must be exactly every record.
  3. prints each run as it ends, then a markdown table of medians with the ratios and targets.

Every row is measured the same way: wall time, CPU time (user + system) and peak memory
(maximum resident set size) of the process doing the work, from GNU time. The baselines run
in a child Python process (this file with --child) that times only its client's work (from
creating the consumer to the last record consumed; from the first record produced to the last
delivered, with every record read into memory beforehand), so Python's start-up and file
reading are not counted against them; their CPU and peak memory are the child's whole (the
producer's peak includes the records it holds).
OSO's tool is skipped, with a note, when its binary is absent.
"""
import argparse
import json
import os
import random
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from backup_bench import event, start_broker  # noqa: E402

HEADER = struct.Struct("<HHII")  # topic index, partition, key length, value length
END = (b"end", b"end")           # the one-record batch that ends each partition


# ---------------------------------------------------------------------------------------------
# Data: a file of records, so the producer baseline reads its input the way a restore does
# (from disk, not from a prepared list in memory) and its peak memory is its own.

def write_records(path, topics, per_partition, seed=42):
    """Writes per_partition records to every partition of topics ([(name, partitions)]),
    round-robin over the partitions; returns (records, payload bytes), end records excluded."""
    rng = random.Random(seed)
    parts = [(t, p) for t, (_, n) in enumerate(topics) for p in range(n)]
    count = payload = 0
    with open(path, "wb", buffering=1 << 20) as f:
        for j in range(per_partition):
            for t, p in parts:
                key = f"user-{count % 50_000}".encode()
                value = event(rng, count)
                f.write(HEADER.pack(t, p, len(key), len(value)))
                f.write(key)
                f.write(value)
                count += 1
                payload += len(key) + len(value)
    return count, payload


def read_records(path):
    with open(path, "rb", buffering=1 << 22) as f:
        while True:
            head = f.read(HEADER.size)
            if not head:
                return
            t, p, kl, vl = HEADER.unpack(head)
            yield t, p, f.read(kl), f.read(vl)


# ---------------------------------------------------------------------------------------------
# librdkafka work: producing the source data, the two baselines, counting restored records.

def producer_config(bootstrap, idempotent):
    conf = {"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.size": 1_000_000,
            "compression.type": "none", "queue.buffering.max.messages": 500_000}
    if idempotent:
        conf["enable.idempotence"] = True
    return conf


def create_topics(bootstrap, topics):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for start in range(0, len(topics), 100):
        futures = admin.create_topics([NewTopic(n, p, 1) for n, p in topics[start:start + 100]],
                                      operation_timeout=60)
        for f in futures.values():
            f.result()


def produce_file(bootstrap, topics, records, idempotent, end_batches):
    """Produces records (an iterable of read_records' tuples), then one end record per
    partition. With end_batches the bulk is flushed first, so that each partition ends with a
    one-record batch."""
    from confluent_kafka import Producer
    p = Producer(producer_config(bootstrap, idempotent))
    names = [n for n, _ in topics]
    for i, (t, part, key, value) in enumerate(records):
        while True:
            try:
                p.produce(names[t], key=key, value=value, partition=part)
                break
            except BufferError:
                p.poll(0.1)
        if i % 20_000 == 0:
            p.poll(0)
    if end_batches and p.flush(300) != 0:
        raise SystemExit("the producer did not deliver everything")
    for name, n in topics:
        for part in range(n):
            p.produce(name, key=END[0], value=END[1], partition=part)
    if p.flush(300) != 0:
        raise SystemExit("the producer did not deliver everything")


def consume_count(bootstrap, topics, expected, settle):
    """Consumes every partition of topics from the start until `expected` records have come
    (or nothing comes for 20 s); with settle, keeps reading for a second more so that extra
    records are counted too. Returns the count."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-count-{time.time()}",
                  "enable.auto.commit": False, "fetch.max.bytes": 52_428_800,
                  "max.partition.fetch.bytes": 10_485_760})
    c.assign([TopicPartition(n, p, 0) for n, parts in topics for p in range(parts)])
    n = 0
    idle_since = time.time()
    while True:
        # consume() waits until it has num_messages or the timeout passes: asking for more
        # than remain would add the whole timeout to the drain's time.
        want = 10_000 if settle else max(1, min(10_000, expected - n))
        msgs = c.consume(want, timeout=1)
        for m in msgs:
            if m.error():
                raise SystemExit(str(m.error()))
        n += len(msgs)
        if msgs:
            idle_since = time.time()
        if n >= expected and (not settle or not msgs):
            break
        if time.time() - idle_since > 20:
            break
    c.close()
    return n


def child_main(args):
    """The baselines, run in a child process so their CPU and memory are measured alone."""
    topics = json.load(open(args.topics))
    start = time.perf_counter()
    if args.child == "drain":
        n = consume_count(args.bootstrap, topics, args.expected, settle=False)
        if n < args.expected:
            raise SystemExit(f"the drain stalled at {n} of {args.expected} records")
    else:
        # The records are read into memory before the clock starts (as restore_bench.py's
        # baseline has them), so the baseline is librdkafka's producing alone; its peak memory
        # includes them.
        records = list(read_records(args.file))
        create_topics(args.bootstrap, topics)
        start = time.perf_counter()
        produce_file(args.bootstrap, topics, records, idempotent=True, end_batches=False)
    print(json.dumps({"elapsed": time.perf_counter() - start}))


# ---------------------------------------------------------------------------------------------
# Measuring a process.

class Failed(Exception):
    pass


def measure(cmd, timeout=None, log=None):
    """Runs cmd under GNU time; returns (wall s, CPU s, peak RSS KiB, stdout). CPU (user +
    system) and peak RSS are GNU time's, of cmd's process alone. (Not os.wait4 on a child of
    this script: Linux carries the peak RSS across exec, so a child forked from this Python
    process would report at least this process's own.) On a non-zero exit (or timeout, when
    the process is killed) raises Failed."""
    out = tempfile.TemporaryFile()
    err = open(log, "w+b") if log else tempfile.TemporaryFile()
    usage = tempfile.NamedTemporaryFile(prefix="usage-", delete=False)
    usage.close()
    start = time.perf_counter()
    proc = subprocess.Popen(["/usr/bin/time", "-o", usage.name, "-f", "%U %S %M"] + cmd,
                            stdout=out, stderr=err)
    timed_out = []
    timer = None
    if timeout:
        def kill():
            timed_out.append(True)
            # The tool is GNU time's only child: kill it (by its pid), and time reports.
            with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
                for pid in f.read().split():
                    os.kill(int(pid), signal.SIGKILL)
        timer = threading.Timer(timeout, kill)
        timer.start()
    proc.wait()
    wall = time.perf_counter() - start
    if timer:
        timer.cancel()
    text = open(usage.name).read()
    os.unlink(usage.name)
    out.seek(0)
    stdout = out.read().decode(errors="replace")
    if timed_out:
        raise Failed(f"killed after {timeout:.0f} s")
    if proc.returncode != 0:
        err.seek(0)
        tail = err.read()[-3000:].decode(errors="replace")
        raise Failed(f"exit code {proc.returncode}: {tail}")
    user, system, rss = text.strip().splitlines()[-1].split()
    return wall, float(user) + float(system), int(rss), stdout


# ---------------------------------------------------------------------------------------------
# The tools' configurations.

def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def yaml_list(items):
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def ours_backup(binary, bootstrap, include, store, backup_id, compression, workdir):
    config = write(os.path.join(workdir, f"{backup_id}.yaml"), f"""mode: backup
backup_id: {backup_id}
source:
  bootstrap_servers: ["{bootstrap}"]
  topics:
    include: {yaml_list(include)}
storage:
  backend: filesystem
  path: {store}
backup:
  compression: {compression}
  consumer_group_snapshot: false
""")
    return [binary, "--log-level", "warn", "backup", "--config", config, "--format", "json"]


def ours_restore(binary, bootstrap, store, backup_id, workdir, name):
    config = write(os.path.join(workdir, f"{name}.yaml"), f"""mode: restore
backup_id: {backup_id}
target:
  bootstrap_servers: ["{bootstrap}"]
storage:
  backend: filesystem
  path: {store}
restore:
  create_topics: true
  consumer_groups:
    enabled: false
""")
    return [binary, "--log-level", "warn", "restore", "--config", config, "--format", "json"]


# OSO's tool: a one-shot backup is `stop_at_current_offsets: true` (its "snapshot mode": it reads
# each partition's high watermark at the start and stops there); its metrics server (by default
# on 0.0.0.0:8080) is turned off so that runs cannot collide on the port.
def oso_backup(binary, bootstrap, include, store, backup_id, compression, workdir):
    config = write(os.path.join(workdir, f"{backup_id}.yaml"), f"""mode: backup
backup_id: {backup_id}
source:
  bootstrap_servers: ["{bootstrap}"]
  topics:
    include: {yaml_list(include)}
storage:
  backend: filesystem
  path: {store}
backup:
  compression: {compression}
  stop_at_current_offsets: true
metrics:
  enabled: false
""")
    return [binary, "backup", "--config", config]


def oso_restore(binary, bootstrap, store, backup_id, workdir, name):
    config = write(os.path.join(workdir, f"{name}.yaml"), f"""mode: restore
backup_id: {backup_id}
target:
  bootstrap_servers: ["{bootstrap}"]
storage:
  backend: filesystem
  path: {store}
restore:
  create_topics: true
metrics:
  enabled: false
""")
    return [binary, "restore", "--config", config]


def oso_manifest_records(store, backup_id):
    """The records OSO's manifest says its backup holds."""
    manifest = json.load(open(os.path.join(store, backup_id, "manifest.json")))
    return sum(s["record_count"] for t in manifest["topics"] for p in t["partitions"]
               for s in p["segments"])


def store_bytes(store):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(store) for f in fs)


# ---------------------------------------------------------------------------------------------
# The runs.

class Bench:
    """Holds what every run needs and the results, per row name: a list of run dicts."""

    def __init__(self, args, workdir, topics, total, payload):
        self.args, self.workdir, self.topics = args, workdir, topics
        self.total, self.payload = total, payload
        self.results = {}
        self.failures = {}
        self.topics_file = write(os.path.join(workdir, "topics.json"), json.dumps(topics))
        self.timeout = getattr(args, "timeout", None)

    def record(self, row, run):
        self.results.setdefault(row, []).append(run)
        extra = f", stored {run['stored'] / 1e6:,.0f} MB" if run.get("stored") else ""
        print(f"  {row:44} {run['wall']:8.2f} s  cpu {run['cpu']:7.2f} s  "
              f"peak {run['rss'] / 1024:6.0f} MiB{extra}", flush=True)

    def fail(self, row, why):
        self.failures.setdefault(row, []).append(why)
        print(f"  {row:44} FAILED: {why}", flush=True)

    def child(self, kind, bootstrap):
        cmd = [sys.executable, os.path.abspath(__file__), "--child", kind, "--bootstrap",
               bootstrap, "--topics", self.topics_file, "--expected", str(self.total),
               "--file", os.path.join(self.workdir, "records.bin")]
        _wall, cpu, rss, out = measure(cmd)
        return {"wall": json.loads(out.strip().splitlines()[-1])["elapsed"], "cpu": cpu,
                "rss": rss}

    def drain(self, row, bootstrap):
        try:
            self.record(row, self.child("drain", bootstrap))
        except Failed as e:
            self.fail(row, str(e))

    def backup(self, row, tool, binary, bootstrap, compression, attempt):
        backup_id = f"{tool}-{compression}-{attempt}"
        store = os.path.join(self.workdir, f"store-{backup_id}")
        make = ours_backup if tool == "ours" else oso_backup
        cmd = make(binary, bootstrap, [n for n, _ in self.topics], store, backup_id,
                   compression, self.workdir)
        try:
            wall, cpu, rss, out = measure(cmd, self.timeout,
                                          os.path.join(self.workdir, f"{backup_id}.log"))
        except Failed as e:
            self.fail(row, str(e))
            return None
        got = json.loads(out)["records"] if tool == "ours" else oso_manifest_records(store,
                                                                                     backup_id)
        if got != self.total:
            self.fail(row, f"backed up {got:,} of {self.total:,} records")
            return None
        self.record(row, {"wall": wall, "cpu": cpu, "rss": rss, "stored": store_bytes(store)})
        return store, backup_id

    def restore(self, row, tool, binary, backup, attempt):
        """Restores (or, for tool "producer", produces) into a fresh broker, then counts."""
        target_dir = os.path.join(self.workdir, f"target-{tool}-{attempt}")
        os.makedirs(target_dir)
        broker, bootstrap = start_broker(self.args.nisshi, target_dir)
        try:
            if tool == "producer":
                run = self.child("produce", bootstrap)
            else:
                store, backup_id = backup
                make = ours_restore if tool == "ours" else oso_restore
                name = f"restore-{tool}-{attempt}"
                wall, cpu, rss, _ = measure(make(binary, bootstrap, store, backup_id,
                                                 self.workdir, name),
                                            self.timeout,
                                            os.path.join(self.workdir, f"{name}.log"))
                run = {"wall": wall, "cpu": cpu, "rss": rss}
            got = consume_count(bootstrap, self.topics, self.total, settle=True)
            if got != self.total:
                self.fail(row, f"the target holds {got:,} records, not {self.total:,}")
                return
            self.record(row, run)
        except Failed as e:
            self.fail(row, str(e))
        finally:
            broker.terminate()
            broker.wait()
            shutil.rmtree(target_dir, ignore_errors=True)


def oso_binary(args):
    if args.oso and os.access(args.oso, os.X_OK):
        return args.oso
    return None


def median(values):
    return statistics.median(values)


def summary(bench, row):
    runs = bench.results.get(row)
    if not runs:
        return None
    return {"wall": median([r["wall"] for r in runs]), "cpu": median([r["cpu"] for r in runs]),
            "rss": max(r["rss"] for r in runs),
            "stored": median([r["stored"] for r in runs]) if "stored" in runs[0] else None,
            "n": len(runs)}


def ratio_text(bench, row, against, target):
    a, b = summary(bench, row), summary(bench, against)
    if not a or not b:
        return f"vs {SHORT[against]}: n/a"
    r = a["wall"] / b["wall"]
    if target is None:
        return f"{r:.2f}x {SHORT[against]}"
    mark = "met" if r <= target else "NOT met"
    return f"{r:.2f}x {SHORT[against]} (target ≤ {target:.2f}x, {mark})"


SHORT = {}


def print_table(bench, rows, ratios, peak_rows, payload, notes):
    """rows: [(row name, label)]; ratios: {row: [(against, target)]}."""
    print()
    print("| | time | MB/s | CPU | peak memory | stored | time ratio (lower is better) |")
    print("|---|---|---|---|---|---|---|")
    for row, label in rows:
        s = summary(bench, row)
        if not s:
            why = "; ".join(sorted(set(bench.failures.get(row, ["not run"]))))
            print(f"| {label} | failed: {why.splitlines()[0]} | | | | | |")
            continue
        peak = f"{s['rss'] / 1024:.0f} MiB"
        if row in peak_rows:
            peak += " (≤ 256: " + ("met" if s["rss"] / 1024 <= 256 else "NOT met") + ")"
        stored = f"{s['stored'] / 1e6:,.0f} MB" if s["stored"] else ""
        rtext = "<br>".join(ratio_text(bench, row, a, t) for a, t in ratios.get(row, []))
        print(f"| {label} | {s['wall']:.2f} s | {payload / s['wall'] / 1e6:.1f} | "
              f"{s['cpu']:.2f} s | {peak} | {stored} | {rtext} |")
    print()
    for n in notes:
        print(n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nisshi")
    ap.add_argument("--binary")
    ap.add_argument("--oso", help="OSO's kafka-backup binary; skipped when absent")
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3,
                    help="rounds; medians are reported (this machine is noisy)")
    ap.add_argument("--timeout", type=float, default=1800,
                    help="seconds after which a tool's run is killed and reported as failed")
    ap.add_argument("--child", choices=("drain", "produce"), help=argparse.SUPPRESS)
    ap.add_argument("--bootstrap", help=argparse.SUPPRESS)
    ap.add_argument("--topics", help=argparse.SUPPRESS)
    ap.add_argument("--expected", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--file", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child_main(args)

    oso = oso_binary(args)
    partitions = 8
    topics = [("bench-events", partitions)]
    per_partition = max(1, args.records // partitions)
    workdir = tempfile.mkdtemp(prefix="kb-compare-")
    broker = None
    try:
        print(f"writing {per_partition * partitions:,} records over {partitions} partitions "
              "to a file ...", flush=True)
        count, payload = write_records(os.path.join(workdir, "records.bin"), topics,
                                       per_partition)
        total = count + partitions
        payload += len(END[0]) * 2 * partitions
        broker, bootstrap = start_broker(args.nisshi, os.path.join(workdir))
        t0 = time.perf_counter()
        create_topics(bootstrap, topics)
        produce_file(bootstrap, topics, read_records(os.path.join(workdir, "records.bin")),
                     idempotent=False, end_batches=True)
        print(f"  produced {total:,} records, {payload / 1e6:,.0f} MB of payload, in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        if not oso:
            print(f"  OSO's kafka-backup not found at {args.oso}: its rows are skipped")

        bench = Bench(args, workdir, topics, total, payload)
        D, P = "drain", "producer"
        ON, OZ, OR = "oso backup none", "oso backup zstd", "oso restore"
        KN, KZ, KR = "kb backup none", "kb backup zstd", "kb restore"
        SHORT.update({D: "drain", P: "producer", ON: "OSO none", OZ: "OSO zstd",
                      OR: "OSO restore"})
        for attempt in range(args.repeat):
            print(f"round {attempt + 1} of {args.repeat}:", flush=True)
            bench.drain(D, bootstrap)
            if oso:
                bench.backup(ON, "oso", oso, bootstrap, "none", attempt)
            bench.backup(KN, "ours", args.binary, bootstrap, "none", attempt)
            oso_z = bench.backup(OZ, "oso", oso, bootstrap, "zstd", attempt) if oso else None
            ours_z = bench.backup(KZ, "ours", args.binary, bootstrap, "zstd", attempt)
            bench.restore(P, "producer", None, None, attempt)
            if oso_z:
                bench.restore(OR, "oso", oso, oso_z, attempt)
            if ours_z:
                bench.restore(KR, "ours", args.binary, ours_z, attempt)
            for name in os.listdir(workdir):
                if name.startswith("store-"):
                    shutil.rmtree(os.path.join(workdir, name), ignore_errors=True)

        rows = [(D, "librdkafka consumer drain (baseline)"),
                (ON, "OSO kafka-backup 0.17.4 backup, `none`"),
                (KN, "kafka-backup backup, `compression: none`"),
                (OZ, "OSO kafka-backup 0.17.4 backup, `zstd`"),
                (KZ, "kafka-backup backup, `compression: zstd`"),
                (P, "librdkafka idempotent producer (baseline; peak holds all records)"),
                (OR, "OSO kafka-backup 0.17.4 restore (its zstd backup)"),
                (KR, "kafka-backup restore (its zstd backup)")]
        if not oso:
            rows = [r for r in rows if not r[0].startswith("oso")]
        ratios = {KN: [(D, 1.0), (ON, 0.75)], KZ: [(OZ, 0.8)], KR: [(P, 1.0), (OR, 0.5)]}
        print_table(bench, rows, ratios, {KN, KZ, KR}, payload, [
            f"{total:,} records of about 1 KiB over {partitions} partitions, "
            f"{payload / 1e6:,.0f} MB of payload (key + value); topic and producers uncompressed.",
            f"Medians of {args.repeat} interleaved rounds (time, CPU); peak memory is the largest "
            "of the runs. MB/s is payload per second of wall time.",
            "CPU is user + system time of the process doing the work (GNU time). "
            "Baseline times cover the client's work only; tools' times the whole process.",
            "Each backup verified to hold every record; each restore (and the producer "
            "baseline) written into a fresh broker and its records counted by a consumer.",
        ])
        if bench.failures:
            print("\nFailures:")
            for row, whys in bench.failures.items():
                for why in whys:
                    print(f"  {row}: {why}")
    finally:
        if broker:
            broker.terminate()
            broker.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
