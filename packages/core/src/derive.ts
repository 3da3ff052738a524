import type { LabelWarning, Service } from './service.js';

/** Bridge-wide options that shape derivation (the CLI flags of DESIGN §2). */
export interface DeriveOptions {
  readonly nodeId: string;
  /** `--ip`: address advertised for published ports instead of the binding's host IP. */
  readonly hostIp?: string;
  /** `--internal`: advertise the container's own IP and exposed port. */
  readonly internal: boolean;
  /** `--network`: which container network's IP to use (`SERVICE_NETWORK` on the container wins). */
  readonly network?: string;
  /** `--tags`: added to every service. */
  readonly tags: readonly string[];
  /** `--explicit`: only containers that name a service (`SERVICE_NAME` or `SERVICE_<port>_NAME`). */
  readonly explicit: boolean;
}

export interface Derivation {
  readonly services: Service[];
  readonly warnings: LabelWarning[];
}
