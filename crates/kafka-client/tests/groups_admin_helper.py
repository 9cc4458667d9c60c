"""Drives confluent-kafka (librdkafka) for tests/groups_admin.rs: a client nobody here wrote,
used to make test data and to check what our client reads and writes.

Usage: python groups_admin_helper.py BROKER COMMAND ARGS...; prints one JSON line."""
import json
import sys
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

BROKER = sys.argv[1]
CMD = sys.argv[2]
ARGS = sys.argv[3:]


def out(value):
    print(json.dumps(value), flush=True)


def consumer(group):
    conf = {
        "bootstrap.servers": BROKER,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        # Short timeouts so that joining and leaving the group is quick.
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
        "max.poll.interval.ms": 6000,
    }
    return Consumer(conf)


def produce(topic, counts):
    """Writes counts[p] records to partition p, e.g. `4,7,10`."""
    counts = [int(n) for n in counts.split(",")]
    p = Producer({"bootstrap.servers": BROKER})
    for part, n in enumerate(counts):
        for i in range(n):
            p.produce(topic, key=f"k{part}-{i}", value=f"v{part}-{i}", partition=part)
    left = p.flush(30)
    if left:
        raise SystemExit(f"{left} records not delivered")
    out({"produced": sum(counts)})


def consume_commit(topic, group, count):
    """Consumes `count` records, commits what was consumed, closes; prints the commit."""
    c = consumer(group)
    c.subscribe([topic])
    seen = 0
    deadline = time.time() + 60
    while seen < int(count) and time.time() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        seen += 1
    if seen < int(count):
        raise SystemExit(f"consumed only {seen} of {count} records")
    committed = c.commit(asynchronous=False)
    c.close()
    out({f"{tp.topic}:{tp.partition}": tp.offset for tp in committed})


def committed(topic, group, partitions):
    c = consumer(group)
    tps = c.committed([TopicPartition(topic, p) for p in range(int(partitions))], timeout=20)
    c.close()
    out({f"{tp.topic}:{tp.partition}": tp.offset for tp in tps})


def consume_first(topic, group, partitions):
    """Joins the group and prints the offset of the first record it receives per partition."""
    c = consumer(group)
    c.subscribe([topic])
    first = {}
    deadline = time.time() + 60
    while len(first) < int(partitions) and time.time() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        first.setdefault(f"{m.topic()}:{m.partition()}", m.offset())
    c.close()
    out(first)


def hold(topic, group):
    """Joins the group, prints when partitions are assigned, stays until stdin closes."""
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    c = consumer(group)
    assigned = threading.Event()
    c.subscribe([topic], on_assign=lambda _c, ps: assigned.set())
    deadline = time.time() + 120
    announced = False
    while not stop.is_set() and time.time() < deadline:
        c.poll(0.2)
        if assigned.is_set() and not announced:
            out({"assigned": True})
            announced = True
    c.close()


def describe_configs(topic):
    a = AdminClient({"bootstrap.servers": BROKER})
    (f,) = a.describe_configs([ConfigResource("TOPIC", topic)]).values()
    out({n: {"value": e.value, "source": int(e.source)} for n, e in f.result().items()})


def validate_only_creates(topic):
    """Whether this broker creates a topic on a validate_only CreateTopics request."""
    a = AdminClient({"bootstrap.servers": BROKER})
    (f,) = a.create_topics([NewTopic(topic, 1, 1)], validate_only=True).values()
    f.result()
    time.sleep(1)
    out({"created": topic in a.list_topics(timeout=10).topics})


def group_state(group):
    a = AdminClient({"bootstrap.servers": BROKER})
    groups = a.list_consumer_groups().result(timeout=20).valid
    out({g.group_id: g.state.name for g in groups if g.group_id == group})


{
    "produce": produce,
    "consume_commit": consume_commit,
    "committed": committed,
    "consume_first": consume_first,
    "hold": hold,
    "describe_configs": describe_configs,
    "validate_only_creates": validate_only_creates,
    "group_state": group_state,
}[CMD](*ARGS)
