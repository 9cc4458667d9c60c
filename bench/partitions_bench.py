"""Many partitions: kafka-backup's backup and restore time and peak memory as the partition
count grows, beside the librdkafka baselines and OSO's kafka-backup.

Run through `bench/run.sh --partitions`, which supplies the tools. For each point (by default
2,000 partitions as 100 topics x 20, then 10,000 as 500 topics x 20) it:
  1. starts a fresh nisshi broker (memory engine), creates the topics, and produces
     PER_PARTITION records of about 1 KiB to every partition (the last one as a one-record
     batch, the memory engine's watermark caveat, see backup_bench.py),
  2. REPEAT rounds, each in this order: librdkafka consumer drain | OSO backup zstd |
     kafka-backup backup zstd | librdkafka idempotent producer into a fresh broker |
     OSO restore into a fresh broker | kafka-backup restore into a fresh broker,
     each verified as in compare_bench.py (backups hold every record; targets hold exactly
     every record, counted by a consumer outside the timed part),
  3. prints every run (wall, CPU, peak memory) as it ends and a markdown table at the end.
A run of OSO's tool that takes longer than --oso-timeout seconds is killed and reported as
such; the point goes on without it.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_bench as cb  # noqa: E402
from backup_bench import start_broker  # noqa: E402


def run_point(args, oso, n_topics, per_topic):
    workdir = tempfile.mkdtemp(prefix=f"kb-partitions-{n_topics * per_topic}-")
    broker = None
    try:
        topics = [(f"many-{t:04d}", per_topic) for t in range(n_topics)]
        parts = n_topics * per_topic
        print(f"{parts:,} partitions ({n_topics} topics x {per_topic}), "
              f"{args.per_partition} records each:", flush=True)
        count, payload = cb.write_records(os.path.join(workdir, "records.bin"), topics,
                                          args.per_partition - 1)
        total = count + parts
        payload += len(cb.END[0]) * 2 * parts
        broker, bootstrap = start_broker(args.nisshi, workdir)
        t0 = time.perf_counter()
        cb.create_topics(bootstrap, topics)
        cb.produce_file(bootstrap, topics, cb.read_records(os.path.join(workdir, "records.bin")),
                        idempotent=False, end_batches=True)
        print(f"  produced {total:,} records, {payload / 1e6:,.0f} MB of payload, in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        args.timeout = args.oso_timeout
        bench = cb.Bench(args, workdir, topics, total, payload)
        ours_timeout = args.kb_timeout
        for attempt in range(args.repeat):
            print(f" round {attempt + 1} of {args.repeat}:", flush=True)
            bench.drain("drain", bootstrap)
            oso_z = None
            if oso and not bench.failures.get("oso backup zstd"):
                bench.timeout = args.oso_timeout
                oso_z = bench.backup("oso backup zstd", "oso", oso, bootstrap, "zstd", attempt)
            bench.timeout = ours_timeout
            ours_z = bench.backup("kb backup zstd", "ours", args.binary, bootstrap, "zstd",
                                  attempt)
            bench.restore("producer", "producer", None, None, attempt)
            if oso_z and not bench.failures.get("oso restore"):
                bench.timeout = args.oso_timeout
                bench.restore("oso restore", "oso", oso, oso_z, attempt)
            if ours_z:
                bench.timeout = ours_timeout
                bench.restore("kb restore", "ours", args.binary, ours_z, attempt)
            for name in os.listdir(workdir):
                if name.startswith("store-"):
                    shutil.rmtree(os.path.join(workdir, name), ignore_errors=True)
        return parts, n_topics, per_topic, total, payload, bench
    finally:
        if broker:
            broker.terminate()
            broker.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nisshi", required=True)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--oso", help="OSO's kafka-backup binary; skipped when absent")
    ap.add_argument("--points", default="100x20,500x20",
                    help="comma-separated TOPICSxPARTITIONS (default 100x20,500x20: 2,000 and "
                         "10,000 partitions)")
    ap.add_argument("--per-partition", type=int, default=20, help="records per partition")
    ap.add_argument("--repeat", type=int, default=1, help="rounds per point; medians reported")
    ap.add_argument("--oso-timeout", type=float, default=300,
                    help="seconds after which a run of OSO's tool is killed (default 300)")
    ap.add_argument("--kb-timeout", type=float, default=1800,
                    help="seconds after which a run of kafka-backup is killed (default 1800)")
    args = ap.parse_args()
    oso = cb.oso_binary(args)
    if not oso:
        print(f"OSO's kafka-backup not found at {args.oso}: its rows are skipped")
    cb.SHORT.update({"drain": "drain", "producer": "producer", "oso backup zstd": "OSO",
                     "oso restore": "OSO"})
    results = []
    for point in args.points.split(","):
        t, p = (int(x) for x in point.lower().split("x"))
        results.append(run_point(args, oso, t, p))

    labels = [("drain", "librdkafka consumer drain", []),
              ("oso backup zstd", "OSO kafka-backup 0.17.4 backup, `zstd`", []),
              ("kb backup zstd", "kafka-backup backup, `zstd`",
               [("drain", None), ("oso backup zstd", None)]),
              ("producer", "librdkafka idempotent producer", []),
              ("oso restore", "OSO kafka-backup 0.17.4 restore", []),
              ("kb restore", "kafka-backup restore", [("producer", None), ("oso restore", None)])]
    if not oso:
        labels = [lab for lab in labels if not lab[0].startswith("oso")]
    print()
    print("| partitions | | time | MB/s | CPU | peak memory | time ratio |")
    print("|---|---|---|---|---|---|---|")
    for parts, n_topics, per_topic, total, payload, bench in results:
        for row, label, ratios in labels:
            s = cb.summary(bench, row)
            head = f"| {parts:,} ({n_topics}x{per_topic}) | {label}"
            if not s:
                why = "; ".join(sorted(set(w.splitlines()[0] for w in
                                           bench.failures.get(row, ["not run"]))))
                print(f"{head} | failed: {why} | | | | |")
                continue
            rtext = "<br>".join(cb.ratio_text(bench, row, a, t) for a, t in ratios)
            print(f"{head} | {s['wall']:.2f} s | {payload / s['wall'] / 1e6:.1f} | "
                  f"{s['cpu']:.2f} s | {s['rss'] / 1024:.0f} MiB | {rtext} |")
    print()
    print(f"{args.per_partition} records of about 1 KiB per partition; medians of "
          f"{args.repeat} round(s), peak memory the largest. Every restore (and the producer "
          "baseline) writes into a fresh broker; counts verified as in the --compare table.")
    for parts, _, _, _, _, bench in results:
        for row, whys in bench.failures.items():
            for why in whys:
                print(f"  {parts:,} partitions, {row}: {why[:2000]}")


if __name__ == "__main__":
    main()
