"""The next best offer (the ksqlDB recipe): the batch assets over the warehouse and the
stream processor on Kafka, on the same rules and declarations."""
