/** Namespace and partition of a record (Consul Enterprise fields; absent means `default`). */
export interface Scoped {
  namespace?: string;
  partition?: string;
}

/** A boolean query parameter: present and not `false` (`?recurse`, `?raw`, `?passing`). */
export function flag(url: URL, name: string): boolean {
  return url.searchParams.has(name) && url.searchParams.get(name) !== 'false';
}

/** Whether a record is in the namespace and partition the request asks for (`?ns=`, `?partition=`). */
export function inScope(url: URL, record: Scoped): boolean {
  return (
    (record.namespace ?? 'default') === (url.searchParams.get('ns') || 'default') &&
    (record.partition ?? 'default') === (url.searchParams.get('partition') || 'default')
  );
}
