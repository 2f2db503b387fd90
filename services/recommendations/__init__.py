"""The recommendation service: signals from Kafka kept in Redis, the trained model, the
offline evaluation (docs/recommendations.md)."""
