/** Transport protocol of a service port. UDP services get `:udp` in their ID and a `udp` tag. */
export type Protocol = 'tcp' | 'udp';

/**
 * Health of a service as the registry should present it. etcd and ZooKeeper only ever hold `passing`
 * services; Consul mirrors the other states into the service's check.
 */
export type HealthStatus = 'passing' | 'warning' | 'critical';

/** Where a service answers in one IP family. */
export interface FamilyEndpoint {
  /** An IPv4 or IPv6 literal (IPv6 without brackets). */
  readonly address: string;
  readonly port: number;
}

/** One registrable endpoint: a container port, named, tagged and owned by one bridge node. */
export interface Service {
  /** `<node-id>:<container-name>:<port>[:udp]`: stable across bridge restarts, unique per host. */
  readonly id: string;
  readonly name: string;
  /** IPv4 or IPv6 literal (IPv6 without brackets). */
  readonly address: string;
  readonly port: number;
  /**
   * Set when the service answers over both IP families (a dual-stack network with `--internal`, or a port
   * published on both wildcards with one `--ip` per family): its endpoint in each. `address`/`port` are the
   * IPv4 one, so readers that know one address keep working.
   */
  readonly dualStack?: { readonly ipv4: FamilyEndpoint; readonly ipv6: FamilyEndpoint };
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

/**
 * A dual-stack service's endpoint per IP family, as the etcd JSON and ZooKeeper curator layouts record it in
 * their `addresses` field: `{"ipv4": {"address", "port"}, "ipv6": {"address", "port"}}`, beside `address` and
 * `port` (the IPv4 one).
 */
export function familyAddresses(dualStack: NonNullable<Service['dualStack']>): {
  readonly ipv4: FamilyEndpoint;
  readonly ipv6: FamilyEndpoint;
} {
  const { ipv4, ipv6 } = dualStack;
  return {
    ipv4: { address: ipv4.address, port: ipv4.port },
    ipv6: { address: ipv6.address, port: ipv6.port },
  };
}
