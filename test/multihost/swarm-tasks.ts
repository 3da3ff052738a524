// What the multihost Swarm tests read of a manager's task list.
import type Docker from 'dockerode';

export interface RawTask {
  ID: string;
  Slot?: number;
  NodeID: string;
  DesiredState: string;
  Status: { State: string; ContainerStatus?: { ContainerID?: string } };
  NetworksAttachments?: { Network: { Spec: { Name: string } }; Addresses: string[] }[];
}

/** Tasks Swarm runs and wants running, as the manager lists them now. */
export async function runningTasks(docker: Docker, service: string): Promise<RawTask[]> {
  const tasks = (await docker.listTasks({
    filters: { service: [service], 'desired-state': ['running'] },
  })) as RawTask[];
  return tasks.filter((t) => t.Status.State === 'running');
}

/** A task's address on `network`, without the prefix length. */
export const addressOn = (task: RawTask, network: string): string =>
  task.NetworksAttachments!.find((a) => a.Network.Spec.Name === network)!.Addresses[0]!.split('/')[0]!;

/** An `id → endpoint` map in a comparable form. */
export const sorted = (m: Map<string, string>): string => JSON.stringify([...m].sort());
