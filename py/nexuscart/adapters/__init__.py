"""All I/O lives here: Redis (+ lua/), PostgreSQL (+ sql/), Kafka."""
