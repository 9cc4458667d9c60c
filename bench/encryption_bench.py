"""What client-side encryption and signing cost: backup and restore with and without them, on
the same data, in the same run, taking turns.

Run through bench/run.sh --encryption, which supplies the tools. In one run it:
  1. starts its own nisshi broker on the memory engine and produces RECORDS JSON-like records
     of about 1 KiB over 8 partitions (see backup_bench.py for the data and the watermark
     caveat),
  2. makes a local data-key file and an Ed25519 signing key with `kafka-backup keys generate`,
  3. times `kafka-backup backup` in the clear and encrypted + signed, alternating
     (clear, protected, clear, ...), for compression none and zstd, each run into a fresh store,
  4. times `kafka-backup restore` of the first clear and the first protected backup (both
     compression none) into new topics, alternating the same way,
and prints, per kind of run, the median wall time, MB/s of record payload, the ratio of the
protected run's throughput to the clear one's, the median CPU time (user + system, of the
kafka-backup process) and the peak memory (maximum resident set size), all from GNU time.
"""
import argparse
import os
import shutil
import subprocess
import tempfile

from backup_bench import PARTITIONS, produce, run_measured as timed, start_broker


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


PROTECTION = """  encryption:
    key_provider: local
    key_file: {key}
  signing_key: {signing}
"""


def backup(binary, bootstrap, topic, workdir, name, compression, protected, keys):
    store = os.path.join(workdir, f"store-{name}")
    config = os.path.join(workdir, f"backup-{name}.yaml")
    write(config, f"""mode: backup
backup_id: {name}
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
""" + (PROTECTION.format(**keys) if protected else ""))
    return store, timed(binary, "backup", config)


def restore(binary, bootstrap, workdir, store, name, target, protected, keys):
    config = os.path.join(workdir, f"restore-{target}.yaml")
    extra = ""
    if protected:
        extra = f"""  encryption:
    key_provider: local
    key_files: [{keys['key']}]
  verify_key: {keys['signing']}.pub
"""
    write(config, f"""mode: restore
backup_id: {name}
target:
  bootstrap_servers: ["{bootstrap}"]
storage:
  backend: filesystem
  path: {store}
restore:
  topic_mapping:
    bench-events: {target}
  restore_id: {target}
  consumer_groups:
    enabled: false
""" + extra)
    return timed(binary, "restore", config)


def median(values):
    return sorted(values)[len(values) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nisshi", required=True)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of each measurement; the median is reported (this machine is noisy)")
    args = ap.parse_args()

    workdir = tempfile.mkdtemp(prefix="kb-encryption-bench-")
    broker, bootstrap = start_broker(args.nisshi, workdir)
    try:
        keys = {"key": os.path.join(workdir, "data.key"),
                "signing": os.path.join(workdir, "signing.key")}
        for kind, path in (("local", keys["key"]), ("signing", keys["signing"])):
            subprocess.run([args.binary, "keys", "generate", "--type", kind, "--out", path],
                           check=True, capture_output=True)
        topic = "bench-events"
        total = args.records + PARTITIONS
        print(f"producing {args.records:,} records over {PARTITIONS} partitions ...", flush=True)
        payload = produce(bootstrap, topic, args.records)
        print(f"  produced {payload / 1e6:,.0f} MB of payload", flush=True)

        results = {}
        stores = {}
        for compression in ("none", "zstd"):
            for attempt in range(args.repeat):
                for protected in (False, True):
                    label = f"backup {compression}, {'encrypted + signed' if protected else 'clear'}"
                    name = f"{compression}-{'p' if protected else 'c'}-{attempt}"
                    store, run = backup(args.binary, bootstrap, topic, workdir, name,
                                        compression, protected, keys)
                    if run[3]["records"] < total:
                        raise SystemExit(f"{label}: stored {run[3]['records']} of {total}")
                    results.setdefault(label, []).append(run)
                    stores.setdefault((compression, protected), (store, name))
                    print(f"  {label} run {attempt + 1}: {run[0]:.2f} s, cpu {run[1]:.2f} s, "
                          f"peak {run[2] / 1024:.0f} MiB", flush=True)
        for attempt in range(args.repeat):
            for protected in (False, True):
                label = f"restore none, {'encrypted + signed' if protected else 'clear'}"
                store, name = stores[("none", protected)]
                target = f"restored-{'p' if protected else 'c'}-{attempt}"
                run = restore(args.binary, bootstrap, workdir, store, name, target, protected,
                              keys)
                if run[3]["records_written"] < args.records:
                    raise SystemExit(f"{label}: wrote {run[3]['records_written']}")
                results.setdefault(label, []).append(run)
                print(f"  {label} run {attempt + 1}: {run[0]:.2f} s, cpu {run[1]:.2f} s, "
                      f"peak {run[2] / 1024:.0f} MiB", flush=True)

        print()
        print(f"{'':40} {'time s':>8} {'MB/s':>8} {'vs clear':>9} {'cpu s':>7} {'peak MiB':>9}"
              "  runs (s)")
        for label, runs in results.items():
            wall = median([r[0] for r in runs])
            cpu = median([r[1] for r in runs])
            peak = max(r[2] for r in runs) / 1024
            clear = label.replace("encrypted + signed", "clear")
            ratio = median([r[0] for r in results[clear]]) / wall
            spread = " ".join(f"{r[0]:.2f}" for r in runs)
            print(f"{label:40} {wall:8.2f} {payload / wall / 1e6:8.1f} {ratio:9.2f} {cpu:7.2f} "
                  f"{peak:9.0f}  {spread}")
        print()
        print("MB/s is record payload (key + value) per second of wall time; 'vs clear' is the clear")
        print("run's median time divided by this row's (1.00 = no cost). CPU is user + system time")
        print(f"of the kafka-backup process. Medians of {args.repeat} alternating runs; peak memory")
        print("is the largest. Targets: encrypted >= 0.90 of clear; peak memory <= 256 MiB.")
    finally:
        broker.terminate()
        broker.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
