// Package traffic replays an IdentityCache-shaped fleet's cache traffic
// against real memcached servers and a MySQL-compatible database, for the
// firedrill drills. It is plain Go (no k6, no JS runtime): extensions/cache
// is the thin k6 adapter over it.
//
// # Model
//
// Records live in a table seeded by Seed. A fleet of P processes, each with
// its own database pool of size S and its own in-process state (coalescing,
// refresh tracking), reads them read-through as IdentityCache does: key
// "IDC:<version>:blob:<Model>:<schema hash>:<id>" placed on a server with
// ketama; get, on a miss SELECT by primary key and set with a TTL; fetch_multi
// as one multi-get and one multi-row SELECT; writes update the row and delete
// the entry. Popularity is a scrambled Zipf over Keys ids (O(1) memory, so a
// 5e9-record keyspace costs nothing), and the hot set is the top HotSet ranks.
// Entries carry a legacy or current format header (Active Support 6.1/7.0);
// a reader only decodes its own format unless the CompatRead protection is on.
//
// # Engine
//
// Arrivals are open-loop: operation i is due at start + i/rate (or Poisson
// gaps), whatever the latency. MaxInflight workers run them; when all are
// busy the pacer waits, the operation starts late, its latency is measured
// from its due time, and it is counted in cache_late. The replay never
// dispatches after Duration, so it runs at most rate x duration operations
// (for a constant rate), and it closes every goroutine and connection when
// it returns or its context is cancelled.
//
// # Metrics
//
// Counters are summed in Go and pushed once per Interval (100 ms) per tag
// set: cache_fetches, cache_hits, cache_misses (tags process, server,
// format), db_queries (counted when issued, so a saturated database
// still shows the demand), cache_coalesced, cache_fill_waits, cache_stale_served,
// cache_lease_won, cache_early_refreshes (tag process), firedrill_errors
// (tag class: timeout, too_many_connections, refused, reset, decode, shed,
// other) and cache_late. Gauges: db_inflight is the peak number of database
// queries in flight during the interval, db_connections the open database
// connections of the fleet at its end.
//
// Trends cache_fetch_ms and db_query_ms carry ONE sample per interval: the
// p99 of that interval's latencies (from an HDR histogram). So a k6
// threshold "p(99)<X" holds when at most 1% of 100 ms intervals had a p99
// above X; "max" is the worst interval's p99; "avg" is the mean of interval
// p99s. Exact distributions come from the HDR output: with HDROut set the
// engine appends one NDJSON line per metric per second,
// {"t":<unix s>,"metric":"cache_fetch"|"db_query","unit":"us","encoded":"..."}
// where encoded is hdrhistogram-go's Encode(V2CompressedEncodingCookieBase)
// (base64 of the compressed V2 form); histograms of several generators merge
// exactly.
package traffic
