"""Everything that talks to Apache Kafka: the local broker and the clients."""
