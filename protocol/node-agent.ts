// Messages of a node's control agent (`$node@<node>`): spawn, stop and inspect actors on that
// node from any process, and kill a worker to model a failure.

import { z } from "zod";

export const NodeAgentMessages = {
  Spawn: z.object({
    kind: z.string().min(1),
    module: z.string().min(1).optional(),
    address: z.string().min(1),
    args: z.unknown().optional(),
  }),
  Stop: z.object({ address: z.string().min(1) }),
  List: z.object({}),
  Stats: z.object({}),
  KillWorker: z.object({ worker: z.number().int().min(0) }),
} as const;

export type SpawnRequest = z.infer<typeof NodeAgentMessages.Spawn>;
