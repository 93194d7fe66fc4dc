"""The worker: the fold loop, the HTTP API (on Faust's web server) and the Prometheus collector around the core."""
