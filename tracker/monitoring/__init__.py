"""Monitoring as code: the Grafana dashboards, generated and checked like the event schemas."""

from tracker.monitoring.dashboards import DASHBOARDS, render_dashboards, stale_dashboards, write_dashboards

__all__ = ["DASHBOARDS", "render_dashboards", "stale_dashboards", "write_dashboards"]
