"""The pure domain: the event contract, the fold, and the signals derived from it.

Nothing under ``tracker.core`` imports faust, aiokafka, prometheus_client or
an HTTP library; ``tests/unit/test_architecture.py`` enforces it.
"""
