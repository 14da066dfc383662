/**
 * Config files shipped inside the program, usable by name with `--config NAME`
 * (the same names and contents as OpenMSIStream's shipped configs).
 *
 * @module
 */

const CLIENT_SECTIONS = `[producer]
batch.size       = 2000000
linger.ms        = 100
compression.type = lz4
key.serializer   = StringSerializer
value.serializer = DataFileChunkSerializer

[consumer]
group.id           = create_new
auto.offset.reset  = earliest
enable.auto.commit = False
fetch.min.bytes    = 100000
key.deserializer   = StringDeserializer
value.deserializer = DataFileChunkDeserializer
`;

function saslBroker(prefix: string): string {
  return `[broker]
bootstrap.servers = $${prefix}_BOOTSTRAP_SERVERS
sasl.mechanism    = PLAIN
security.protocol = SASL_SSL
sasl.username     = $${prefix}_USERNAME
sasl.password     = $${prefix}_PASSWORD

`;
}

/** Built-in config files by name (without the `.config` extension). */
export const BUILTIN_CONFIGS: ReadonlyMap<string, string> = new Map([
  [
    "local_broker_test",
    `[broker]
bootstrap.servers = $LOCAL_KAFKA_BROKER_BOOTSTRAP_SERVERS

${CLIENT_SECTIONS}`,
  ],
  ["test", saslBroker("KAFKA_TEST_CLUSTER") + CLIENT_SECTIONS],
  ["prod", saslBroker("KAFKA_PROD_CLUSTER") + CLIENT_SECTIONS],
]);
