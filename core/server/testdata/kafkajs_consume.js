// A stock kafkajs consumer (no zstd codec) reads want records from a topic;
// run by TestBrokerSideCompressionServesKafkajs. argv: bootstrap topic want.
const { Kafka, logLevel } = require('kafkajs')
const [bootstrap, topic, wantStr] = process.argv.slice(2)
const want = Number(wantStr)

const t0 = Date.now()
async function main () {
  const kafka = new Kafka({ clientId: 'kjs-consume', brokers: [bootstrap], logLevel: logLevel.NOTHING })
  const consumer = kafka.consumer({ groupId: 'kjs-' + topic })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  let n = 0
  let failed = null
  const done = new Promise((resolve) => {
    consumer.on(consumer.events.CRASH, (e) => { failed = e.payload.error; resolve() })
    consumer.run({
      eachMessage: async ({ message }) => {
        if (message.value.toString() !== 'reading ' + n) throw new Error('record ' + n + ' is ' + message.value)
        n++
        if (n === want) resolve()
      }
    })
  })
  let timer
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => { failed = failed || new Error('timed out at ' + n); resolve() }, 30000)
  })
  await Promise.race([done, timeout])
  clearTimeout(timer)
  await consumer.disconnect()
  if (failed) throw failed
  console.log('ok', n, (Date.now() - t0) + 'ms')
}
main().catch(e => { console.error(String(e)); process.exit(1) })
