/**
 * k6/x/container: container faults on the servers of this run.
 *
 * Targets are named by their firedrill.service label (mysql, memcached-0,
 * ...) and must carry firedrill.run = FIREDRILL_RUN_ID; anything else is
 * refused, as is the toxiproxy container (use toxiproxy.disable). The Docker
 * Engine is found from the environment (DOCKER_HOST, default socket). Every
 * call has a 30 s timeout (plus the stop grace) and throws on error; calls
 * are refused in the init context. Each injection and removal adds 1 to the
 * Counter `firedrill_fault` tagged fault, action (inject|remove),
 * target (service), name ''.
 *
 * Traffic through Toxiproxy finds a restarted server again by its network
 * alias; a directly published host port may change after a restart.
 * Call cleanup() in teardown().
 */

/** Stops the server (SIGTERM, SIGKILL after graceMs; default 0). Fault container_stop. */
export function stop(service: string, graceMs?: number): void;
/** Sends a signal (default "SIGKILL"). Fault container_kill. */
export function kill(service: string, signal?: string): void;
/** Freezes the server: connections stay open, nothing answers. Fault container_pause. */
export function pause(service: string): void;
/** Thaws a paused server; removes container_pause. */
export function unpause(service: string): void;
/** Starts a stopped or killed server and waits until Docker reports it running (not until it answers). Removes container_stop / container_kill. */
export function start(service: string): void;
/**
 * Drops every packet sent to `port` inside `service`'s network namespace (an iptables DROP added by a
 * short-lived NET_ADMIN container), so connects time out as behind a security group that drops SYNs.
 * Usually service "toxiproxy" and a proxy's listen port; `target` names it on the timeline. Fault unreachable.
 */
export function unreachable(service: string, port: number, target: string): void;
/** Removes what unreachable added; removes the unreachable fault. */
export function reachable(service: string, port: number, target: string): void;
/** The services of this run with their container state, sorted. */
export function services(): { service: string; state: string; id: string }[];
/** Makes reachable, unpauses and starts every server this run cut off, paused, stopped or killed. Safe to call twice. */
export function cleanup(): void;

declare const container: {
  stop: typeof stop;
  kill: typeof kill;
  pause: typeof pause;
  unpause: typeof unpause;
  start: typeof start;
  services: typeof services;
  unreachable: typeof unreachable;
  reachable: typeof reachable;
  cleanup: typeof cleanup;
};
export default container;
