"""Event-sourced tracker of AI-infrastructure market signals.

Layout: ``tracker.core`` is the pure domain (event contract, folds, signals);
``tracker.kafka`` talks to the broker; ``tracker.worker`` is the fold
loop, the HTTP API and the Prometheus collector; ``tracker.cli`` is the
command line. ``tracker.errors`` holds the one exception hierarchy.
"""

__version__ = "0.1.0"
