import type { Scenario } from '../harness/scenario.ts';
import { fanOut } from './s1-fan-out.ts';
import { acknowledged } from './s2-acknowledged.ts';
import { manyDocuments } from './s3-many-documents.ts';
import { awareness } from './s4-awareness.ts';
import { acrossInstances } from './s5-across-instances.ts';
import { history } from './s6-history.ts';
import { idle } from './s7-idle.ts';
import { documentSize } from './s8-document-size.ts';
import { events } from './s9-events.ts';
import { scaleOut } from './s10-scale-out.ts';
import { hostileClient } from './s11-hostile-client.ts';

/** Every scenario, in the order they run. */
export const scenarios: Scenario[] = [fanOut, acknowledged, manyDocuments, awareness, acrossInstances, history, idle, documentSize, events, scaleOut, hostileClient];
