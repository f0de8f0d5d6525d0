package main

import "github.com/prometheus/client_golang/prometheus"

// ns prefixes every metric of the service; firedrill samples them as
// app_example_...
const ns = "example"

// metrics are the service's own counters, served at /metrics in
// Prometheus' text format.
type metrics struct {
	requests    *prometheus.CounterVec
	latency     prometheus.Histogram
	shed        prometheus.Counter
	failed      prometheus.Counter
	cacheCalls  prometheus.Counter
	cacheHits   prometheus.Counter
	cacheMisses prometheus.Counter
	foreign     prometheus.Counter
	cacheErrors *prometheus.CounterVec
	dbQueries   prometheus.Counter
	dbErrors    prometheus.Counter
	dbLatency   prometheus.Histogram

	tierCalls    prometheus.Counter
	tierErrors   *prometheus.CounterVec
	tierSkipped  prometheus.Counter
	tierFlagOffs prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	c := func(name, help string) prometheus.Counter {
		x := prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help})
		reg.MustRegister(x)
		return x
	}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "requests_total", Help: "requests answered, by status code"}, []string{"code"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "request_seconds", Help: "request latency",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
		shed:        c("shed_total", "requests shed for want of a worker"),
		failed:      c("failed_total", "requests failed by a database error"),
		cacheCalls:  c("cache_calls_total", "cache reads"),
		cacheHits:   c("cache_hits_total", "cache reads that found an entry this release decodes"),
		cacheMisses: c("cache_misses_total", "cache reads that found nothing usable"),
		foreign:     c("cache_foreign_total", "entries found in the other cache format (counted as misses)"),
		cacheErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "cache_errors_total", Help: "cache calls that failed, by class"}, []string{"class"}),
		dbQueries:   c("db_queries_total", "database queries (fills)"),
		dbErrors:    c("db_errors_total", "database queries that failed"),
		dbLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "db_query_seconds", Help: "database query latency",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		tierCalls:    c("tier_calls_total", "calls to the second cache tier (gets)"),
		tierErrors:   prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "tier_errors_total", Help: "tier calls that failed, by class"}, []string{"class"}),
		tierSkipped:  c("tier_skipped_total", "tier calls skipped while the tier's feature flag was off"),
		tierFlagOffs: c("tier_flag_offs_total", "times the tier's feature flag turned off"),
	}
	reg.MustRegister(m.requests, m.latency, m.cacheErrors, m.dbLatency, m.tierErrors)
	return m
}
