// kafkajs drives IncrementalAlterConfigs-less alterConfigs (AlterConfigs),
// describeConfigs, deleteTopicRecords and fetchTopicOffsets; run by
// TestNonGoClientsAdmin. argv: bootstrap topic.
const { Kafka, logLevel, ConfigResourceTypes } = require('kafkajs')
const [bootstrap, topic] = process.argv.slice(2)

async function main () {
  const kafka = new Kafka({ clientId: 'kjs-admin', brokers: [bootstrap], logLevel: logLevel.NOTHING, retry: { retries: 2 } })
  const admin = kafka.admin()
  await admin.connect()
  await admin.alterConfigs({
    validateOnly: false,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'retention.bytes', value: '1048576' }] }]
  })
  const d = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['retention.bytes'] }] })
  const v = d.resources[0].configEntries[0].configValue
  if (v !== '1048576') throw new Error('retention.bytes described as ' + v)
  let refused = false
  try {
    await admin.alterConfigs({ resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'no.such', value: '1' }] }] })
  } catch (e) {
    refused = e.type === 'INVALID_CONFIG' || /INVALID_CONFIG|Unknown topic config/.test(String(e))
  }
  if (!refused) throw new Error('unknown config not refused with INVALID_CONFIG')
  await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '7' }] })
  const offs = await admin.fetchTopicOffsets(topic)
  const p0 = offs.find(o => o.partition === 0)
  if (p0.low !== '7') throw new Error('low watermark ' + p0.low + ' after deleteTopicRecords')
  await admin.disconnect()
  console.log('ok', v, p0.low, p0.high)
}
main().catch(e => { console.error(e); process.exit(1) })
