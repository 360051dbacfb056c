# confluent-kafka-python (librdkafka): a transactional producer commits one
# transaction, aborts one and commits another; a read_committed consumer
# must see only the committed records. Run by TestTransactionsLibrdkafka.
# argv: bootstrap topic.
import sys, time
from confluent_kafka import Consumer, Producer

boot, topic = sys.argv[1], sys.argv[2]
p = Producer({"bootstrap.servers": boot, "transactional.id": "rdk-txn"})
p.init_transactions(30)
for prefix, commit in (("c", True), ("a", False), ("d", True)):
    p.begin_transaction()
    for i in range(5):
        p.produce(topic, key=str(i), value="%s%d" % (prefix, i))
    if commit:
        p.commit_transaction(30)
    else:
        p.abort_transaction(30)
print("produced")

c = Consumer({"bootstrap.servers": boot, "group.id": "rdk-check", "auto.offset.reset": "earliest",
              "isolation.level": "read_committed", "enable.auto.commit": False})
c.subscribe([topic])
seen, deadline = [], time.time() + 30
while len(seen) < 10 and time.time() < deadline:
    m = c.poll(0.5)
    if m is None or m.error():
        continue
    seen.append(m.value().decode())
# Anything aborted would arrive with or before the last committed records.
end = time.time() + 2
while time.time() < end:
    m = c.poll(0.2)
    if m is not None and not m.error():
        seen.append(m.value().decode())
c.close()
print("committed=[%s]" % " ".join(sorted(seen)))
