"""Prometheus metrics of one service process (``GET /metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, disable_created_metrics

disable_created_metrics()  # no *_created series: they double the output and nobody graphs them

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("sine_requests_total", "HTTP requests by endpoint and status code",
                                ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram("sine_request_seconds", "Request latency by endpoint", ["endpoint"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.errors = Counter("sine_errors_total", "Requests answered with a 5xx status", ["endpoint"],
                              registry=self.registry)
        self.disconnects = Counter("sine_client_disconnects_total", "Requests whose client went away "
                                   "before they were read (status 499, not an error)", ["endpoint"],
                                   registry=self.registry)
        self.rejected = Counter("sine_rejected_total", "Requests refused with 503 before any work "
                                "(overloaded: SINE_MAX_WAITING requests were already waiting)", ["reason"],
                                registry=self.registry)
        self.stream_entries = Gauge("sine_event_stream_entries", "Entries in the event stream after the "
                                    "last write (alert well below SINE_EVENT_STREAM_MAXLEN)",
                                    registry=self.registry)
        self.fallbacks = Counter("sine_fallback_total", "Users answered with popular items",
                                 registry=self.registry)
        self.events = Counter("sine_events_stored_total", "Click events stored", registry=self.registry)
        self.batch_size = Histogram("sine_batch_size", "Users per encoder + index call",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=self.registry)
        self.catalog = Gauge("sine_catalog_items", "Items in the live model's catalog",
                             registry=self.registry)
        self.model = Info("sine_model", "The live model version and index", registry=self.registry)
        self.reloads = Counter("sine_model_reloads_total", "Model swaps", ["result"],
                               registry=self.registry)
