/**
 * k6/x/toxiproxy: network faults on the harness's Toxiproxy proxies.
 *
 * The API URL comes from FIREDRILL_TOXIPROXY (default http://127.0.0.1:8474).
 * Every call has a 5 s timeout and throws on any error (unknown toxic type,
 * bad stream, toxicity out of [0, 1], unknown option, missing proxy).
 * Calls are refused in the init context. Each injection and removal adds 1
 * to the Counter `firedrill_fault` tagged fault, action (inject|remove),
 * target (proxy) and name (toxic name, '' for partitions).
 * Call cleanup() in teardown().
 */

export type Stream = "downstream" | "upstream";

/** Attributes per type; all non-negative integers. */
export interface ToxicAttributes {
  latency: { latency?: number /* ms */; jitter?: number /* ms */ };
  bandwidth: { rate?: number /* KB/s */ };
  slow_close: { delay?: number /* ms */ };
  timeout: { timeout?: number /* ms; 0 = hold data until removed */ };
  reset_peer: { timeout?: number /* ms */ };
  limit_data: { bytes?: number };
  slicer: { average_size?: number; size_variation?: number; delay?: number /* µs */ };
}

export type ToxicType = keyof ToxicAttributes;

export interface ToxicSpec<T extends ToxicType = ToxicType> {
  /** Default `${type}_${stream}`. */
  name?: string;
  type: T;
  /** Default "downstream" (server to client). */
  stream?: Stream;
  /** Probability in [0, 1] that a connection gets the toxic; default 1. */
  toxicity?: number;
  attributes?: ToxicAttributes[T];
}

export interface Toxic {
  name: string;
  type: ToxicType;
  stream: Stream;
  toxicity: number;
  attributes: Record<string, number>;
}

export interface Proxy {
  name: string;
  listen: string;
  upstream: string;
  enabled: boolean;
  toxics: Toxic[];
}

/** Adds a toxic to a proxy; event fault=<type>, action=inject. */
export function addToxic<T extends ToxicType>(proxy: string, spec: ToxicSpec<T>): Toxic;
/** Changes a toxic's toxicity or attributes; event fault=<type>, action=inject. */
export function updateToxic(proxy: string, name: string, spec: { toxicity?: number; attributes?: Record<string, number> }): Toxic;
/** Removes a toxic; event fault=<type>, action=remove. */
export function removeToxic(proxy: string, name: string): void;
/** Disables a proxy (connections closed and refused); event fault=partition, action=inject. */
export function disable(proxy: string): void;
/** Enables a proxy again; event fault=partition, action=remove. */
export function enable(proxy: string): void;
/** Every proxy with its toxics, sorted by name. */
export function proxies(): Proxy[];
/** Removes every toxic this run added and enables every proxy it disabled; safe to call twice. */
export function cleanup(): void;
/** The toxic types accepted, sorted. */
export function toxicTypes(): ToxicType[];

declare const toxiproxy: {
  addToxic: typeof addToxic;
  updateToxic: typeof updateToxic;
  removeToxic: typeof removeToxic;
  disable: typeof disable;
  enable: typeof enable;
  proxies: typeof proxies;
  cleanup: typeof cleanup;
  toxicTypes: typeof toxicTypes;
};
export default toxiproxy;
