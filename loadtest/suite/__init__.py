"""The performance suite (``scripts/bench suite``): PT-01 baseline, PT-02 sync vs async,
PT-03 horizontal scaling, PT-04 Kafka partitions, PT-05 burst, and the shopper mix under
distributed Locust, on one throwaway stack on loopback, with the bare Granian ceiling
measured in the same run; the report and its plots land in docs/performance/<run>/.

It composes the existing load pieces (loadtest/storm.py's server, wrk and vegeta runners,
loadtest/wrk/*.lua, loadtest/locustfile.py) instead of copying them. docs/performance/README.md
says what each test measures and how to read its plots.
"""
