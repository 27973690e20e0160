import { TENANT, type Deployment } from '../harness/deployment.ts';
import type { ClientSpec } from '../harness/load.ts';

/** `count` editor clients of `document` on `deployment`'s server number `instance`, users `${prefix}-0`... */
export function editors(deployment: Deployment, document: string, count: number, options: Partial<ClientSpec> & { prefix: string; instance?: number }): ClientSpec[] {
  const { prefix, instance = 0, ...rest } = options;
  return Array.from({ length: count }, (_, i) => ({
    url: deployment.servers[instance]!.wsUrl,
    document: `${TENANT}/quote/${document}`,
    tenant: TENANT,
    user: `${prefix}-${i}`,
    role: 'editor',
    group: 'editor',
    lines: 1,
    record: true,
    ...rest,
  }));
}
