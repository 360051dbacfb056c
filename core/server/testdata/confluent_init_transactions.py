# confluent-kafka-python (librdkafka): init_transactions must fail at once
# with a fatal error, not retry until its timeout; run by
# TestTransactionsRefusedFast. argv: bootstrap.
import sys, time
from confluent_kafka import Producer
p = Producer({"bootstrap.servers": sys.argv[1], "transactional.id": "probe"})
t0 = time.time()
try:
    p.init_transactions(15)
    print("init ok", time.time() - t0)
except Exception as e:
    print("init failed after %.1fs: %s" % (time.time() - t0, e))
