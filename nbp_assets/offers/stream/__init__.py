"""The next-best-offer recipe on Kafka topics: a stream processor (events in, offers out, in
milliseconds), the warehouse sink, topic administration, and a local broker for tests and dev.

Modules: config (client settings from NBP_KAFKA_*), topics (names, creation, JSON codecs),
state (the processor's functional core: tables, pending events, the join and the rules, no
Kafka, no Dagster), processor (the Kafka shell around it), sink (output topic -> warehouse),
lag (consumer lag and waiting events), broker (a local tansu broker for tests and dev).
"""
