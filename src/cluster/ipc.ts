// Messages between the supervisor and its worker processes (Node IPC channel).
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { Config } from '../config/schema.js';
import type { UserDeltas, UserOthers } from './user-counts.js';

export type MetricJson = MetricObjectWithValues<MetricValue<string>>;

export type ToWorker =
  | { type: 'start'; config: Config; workerId: string; devSecret: string }
  | { type: 'drain' }
  | { type: 'collect'; id: number }
  /** Readiness for the supervisor's --admin-port /readyz. */
  | { type: 'probe'; id: number }
  | { type: 'metrics'; id: number; text: string }
  /** Sibling workers that exited: their member counts are dropped now, not at their TTL. */
  | { type: 'forget'; presenceIds: string[] }
  | UserOthers;

export type ToSupervisor =
  /** `presenceId` names the worker's member counts in the bus (Presence.presenceId). */
  | { type: 'ready'; port: number; presenceId: string }
  | { type: 'collected'; id: number; metrics: MetricJson[] }
  | { type: 'probed'; id: number; ready: boolean }
  /** A worker serving GET /metrics asks for the node-wide aggregate. */
  | { type: 'metrics?'; id: number }
  | UserDeltas;
