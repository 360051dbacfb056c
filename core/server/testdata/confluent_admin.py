# confluent-kafka-python (librdkafka) AlterConfigs and DescribeConfigs; run
# by TestNonGoClientsAdmin. argv: bootstrap topic.
import sys
from confluent_kafka.admin import AdminClient, ConfigResource
from confluent_kafka import KafkaException

bootstrap, topic = sys.argv[1], sys.argv[2]
adm = AdminClient({"bootstrap.servers": bootstrap})
res = ConfigResource("topic", topic, set_config={"retention.ms": "3600000", "cleanup.policy": "compact"})
for r, f in adm.alter_configs([res], request_timeout=10).items():
    f.result()
bad = ConfigResource("topic", topic, set_config={"segment.bytes": "12"})
try:
    for r, f in adm.alter_configs([bad], request_timeout=10).items():
        f.result()
    sys.exit("segment.bytes=12 accepted")
except KafkaException as e:
    if e.args[0].name() != "INVALID_CONFIG":
        sys.exit("segment.bytes=12: %s, want INVALID_CONFIG" % e)
for r, f in adm.describe_configs([ConfigResource("topic", topic)], request_timeout=10).items():
    entries = {k: v.value for k, v in f.result().items()}
if entries.get("retention.ms") != "3600000" or entries.get("cleanup.policy") != "compact":
    sys.exit("described %r" % entries)
print("ok", entries["retention.ms"], entries["cleanup.policy"])
