# kafka-python drives AlterConfigs (v0/v1) and DescribeConfigs; run by
# TestNonGoClientsAdmin. argv: bootstrap topic.
import sys
from kafka.admin import KafkaAdminClient, ConfigResource, ConfigResourceType

bootstrap, topic = sys.argv[1], sys.argv[2]
adm = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
res = adm.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                        configs={"retention.ms": "7200000", "max.message.bytes": "65536"})])
for r in res.resources:
    code, msg = r[0], r[1]
    if code != 0:
        sys.exit("alter_configs: error %d %s" % (code, msg))
bad = adm.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "soon"})])
code, msg = bad.resources[0][0], bad.resources[0][1]
if code != 40:  # INVALID_CONFIG
    sys.exit("bad value answered %d %s, want 40" % (code, msg))
desc = adm.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
entries = {e[0]: e[1] for e in desc[0].resources[0][4]}
if entries.get("retention.ms") != "7200000" or entries.get("max.message.bytes") != "65536":
    sys.exit("described %r" % entries)
print("ok", entries["retention.ms"], entries["max.message.bytes"])
adm.close()
