/** Transport protocol of a service port. UDP services get `:udp` in their ID and a `udp` tag. */
export type Protocol = 'tcp' | 'udp';

/**
 * Health of a service as the registry should present it. etcd and ZooKeeper only ever hold `passing`
 * services; Consul mirrors the other states into the service's check.
 */
export type HealthStatus = 'passing' | 'warning' | 'critical';

/** One registrable endpoint: a container port, named, tagged and owned by one bridge node. */
export interface Service {
  /** `<node-id>:<container-name>:<port>[:udp]`: stable across bridge restarts, unique per host. */
  readonly id: string;
  readonly name: string;
  /** IPv4 or IPv6 literal (IPv6 without brackets). */
  readonly address: string;
  readonly port: number;
  readonly protocol: Protocol;
  /** The container-side port the service was derived from (equals `port` with `--internal`). */
  readonly containerPort: number;
  readonly tags: readonly string[];
  /** `SERVICE_<key>` values that are not otherwise interpreted, keys lower-cased (registrator's convention). */
  readonly meta: Readonly<Record<string, string>>;
  /** Node id of the bridge that owns this registration. */
  readonly node: string;
  /**
   * The container the bridge derived it from. Absent for a service registered with `registerService`: the
   * adapters then store no container fields at all.
   */
  readonly container?: { readonly id: string; readonly name: string };
  readonly health: HealthStatus;
  /** Why the service is not passing (probe output, "container paused"); empty when passing. */
  readonly healthOutput: string;
  /**
   * Raw `SERVICE_[<port>_]CHECK_<KIND>` values, keys lower-cased (`http`, `interval`, `deregister_after`...).
   * Only the Consul adapter interprets them; it validates and warns.
   */
  readonly checks: Readonly<Record<string, string>>;
}

/** A problem in what a container asked for: logged as one warning, never fatal. */
export interface LabelWarning {
  /** Container name (without the leading slash). */
  readonly container: string;
  /** The label or environment key at fault, e.g. `SERVICE_80_NAME`. */
  readonly key: string;
  readonly message: string;
}
