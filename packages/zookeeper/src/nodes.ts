/**
 * Reading the tree under the base, and the service nodes (`<base>/<name>`) the instances live under: made
 * once and cached, reaped once empty.
 */
import type { Logger } from '@registrar/core';
import { runPool } from '@registrar/core/kit';
import zookeeper from 'node-zookeeper-client';
import type { ACL, Stat } from 'node-zookeeper-client';
import { isCode } from './errors.js';
import type { LayoutCodec } from './layout.js';
import type { Session } from './session.js';

const E = zookeeper.Exception;

/** Where a node of ours was found and what it holds. */
export interface OwnedNode {
  readonly path: string;
  readonly id: string;
  readonly name: string;
  /** The writing engine, if the node records one. */
  readonly engine?: string;
  readonly data: string;
  readonly stat: Stat;
}

export function parentOf(path: string): string {
  return path.slice(0, path.lastIndexOf('/')) || '/';
}

/** The node's data and stat; undefined when there is no node. */
export async function readNode(
  session: Session,
  path: string,
): Promise<{ data: string; stat: Stat } | undefined> {
  try {
    const [data, stat] = await session.call<[Buffer | undefined, Stat]>('getData', (c, cb) =>
      c.getData(path, cb),
    );
    return { data: data?.toString('utf8') ?? '', stat };
  } catch (error) {
    if (isCode(error, E.NO_NODE)) return undefined;
    throw error;
  }
}

/** The children's names; none when the node is missing or not ours to read. */
async function childrenOf(session: Session, path: string): Promise<string[]> {
  try {
    const [children] = await session.call<[string[], Stat]>('getChildren', (c, cb) =>
      c.getChildren(path, cb),
    );
    return children;
  } catch (error) {
    if (isCode(error, E.NO_NODE, E.NO_AUTH)) return [];
    throw error;
  }
}

/**
 * Every node under `base` whose record names `nodeId` as owner. Reads only, pipelined; the data of only
 * those children whose name this node can own (the curator layout names them `<node-id>:...`), so a base
 * shared with thousands of other nodes' instances costs one `getChildren` per service, not a read of each
 * instance.
 */
export async function scanOwned(
  session: Session,
  base: string,
  codec: LayoutCodec,
  nodeId: string,
): Promise<OwnedNode[]> {
  const names = await childrenOf(session, base || '/');
  const perName = await runPool(names, 16, async (name) => {
    const dir = `${base}/${name}`;
    const kids = (await childrenOf(session, dir)).filter((kid) => codec.mayOwn(kid, nodeId));
    const found = await runPool(kids, 32, async (kid) => {
      const path = `${dir}/${kid}`;
      let existing: { data: string; stat: Stat } | undefined;
      try {
        existing = await readNode(session, path);
      } catch (error) {
        if (isCode(error, E.NO_AUTH)) return undefined;
        throw error;
      }
      const decoded = existing && codec.decode(existing.data);
      if (!existing || decoded?.node !== nodeId) return undefined;
      const engine = decoded.engine !== undefined ? { engine: decoded.engine } : {};
      return {
        path,
        id: decoded.id,
        name: decoded.name,
        ...engine,
        data: existing.data,
        stat: existing.stat,
      };
    });
    return found.filter((node) => node !== undefined);
  });
  return perName.flat();
}

/**
 * Service nodes (`<base>/<name>`) known to exist: kept when their last instance goes, so the next start in
 * that service is one create, and removed by `reap()` once empty. Forgotten when a create says NO_NODE
 * (another bridge reaped it).
 */
export class ServiceNodes {
  private readonly known = new Set<string>();

  constructor(
    private readonly base: string,
    private readonly acls: ACL[],
    private readonly logger: Logger,
  ) {}

  /** `<base>/<name>`: a node this adapter creates for a service and may reap once it is empty. */
  isServiceNode(path: string): boolean {
    return path.startsWith(`${this.base}/`) && !path.slice(this.base.length + 1).includes('/');
  }

  has(path: string): boolean {
    return this.known.has(path);
  }

  /** `path` (an instance) exists, hence its service node. */
  holds(path: string): void {
    const parent = parentOf(path);
    if (this.isServiceNode(parent)) this.known.add(parent);
  }

  /** `path` is gone, or may be: the next create under it makes it first. */
  forget(path: string): void {
    this.known.delete(path);
  }

  /** Create `path` and its missing ancestors (persistent), remembering it if it is a service node. */
  async ensure(session: Session, path: string): Promise<void> {
    if (this.known.has(path)) return;
    let current = '';
    for (const segment of path.split('/').slice(1)) {
      current += `/${segment}`;
      const node = current;
      const stat = await session.call<Stat | null>('exists', (c, cb) => c.exists(node, cb));
      if (stat) continue;
      try {
        await session.call('create', (c, cb) =>
          c.create(node, this.acls, zookeeper.CreateMode.PERSISTENT, cb),
        );
      } catch (error) {
        if (!isCode(error, E.NODE_EXISTS)) throw error;
      }
    }
    if (this.isServiceNode(path)) this.known.add(path);
  }

  /**
   * Remove the known service nodes that have no instance left. ZooKeeper refuses to delete a node with
   * children (NOT_EMPTY) and the delete is versioned, so an instance another bridge creates at the same
   * moment wins; that bridge creates the node again on NO_NODE. The node is forgotten before its delete is
   * sent, so a create of ours racing with it does the same.
   */
  async reap(session: Session): Promise<void> {
    await runPool([...this.known], 16, async (parent) => {
      const stat = await session.call<Stat | null>('exists', (c, cb) => c.exists(parent, cb));
      if (!stat) return void this.known.delete(parent);
      if (stat.numChildren > 0) return;
      this.known.delete(parent);
      try {
        await session.call('remove', (c, cb) => c.remove(parent, stat.version, cb));
        this.logger.debug({ path: parent }, 'reaped empty service node');
      } catch (error) {
        if (isCode(error, E.NOT_EMPTY, E.BAD_VERSION)) this.known.add(parent);
        else if (!isCode(error, E.NO_NODE, E.NO_AUTH)) throw error;
      }
    });
  }
}
