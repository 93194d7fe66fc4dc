"""The worker: the Faust fold agent and its tables, the HTTP API and the Prometheus collector around the core."""
