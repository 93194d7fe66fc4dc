"""The worker: the Faust topology, the HTTP API and the Prometheus collector around the core."""
