// The group coordinator for the groups whose id hashes to one partition of
// __consumer_offsets. The broker agent runs it next to that partition's leader replica; it
// rebuilds its state by reading the partition, and writes every offset commit and every
// completed rebalance there with acks=all before answering. When leadership of the
// partition moves, the new leader's coordinator takes over from the log.
//
// Group state machine (Kafka's classic protocol):
//   Empty --join--> PreparingRebalance --all joined / timeout--> CompletingRebalance
//   --leader's SyncGroup--> Stable --join / leave / session expiry--> PreparingRebalance

import { randomUUID } from "node:crypto";
import { z } from "zod";
import { defineActor, type ActorContext, type ReplyHandle } from "../../runtime/actor.js";
import { ErrorCode, SkeinError } from "../../protocol/errors.js";
import { replicaAddress, type FetchResult } from "../../protocol/cluster.js";
import { encodeBatch, iterateBatches, decodeRecords } from "../../protocol/record-batch.js";
import {
  CoordinatorMessages,
  GroupSnapshot,
  GroupState,
  OFFSETS_TOPIC,
  partitionForGroup,
  type CommittedOffset,
  type GroupDescription,
  type JoinGroupResult,
} from "../../protocol/groups.js";

export const CoordinatorArgs = z.object({
  broker: z.number().int().min(0),
  partition: z.number().int().min(0),
  /** Partitions of __consumer_offsets (to refuse groups that hash elsewhere). */
  offsetsPartitions: z.number().int().min(1),
  /** How long a new group waits for more members before its first rebalance, ms. */
  initialRebalanceDelayMs: z.number().int().min(0).default(300),
  /** Most groups per coordinator; more are refused (bounded memory). */
  maxGroups: z.number().int().min(1).default(100_000),
});
type Args = z.infer<typeof CoordinatorArgs>;
type Ctx = ActorContext<Args>;

interface Member {
  memberId: string;
  groupInstanceId?: string;
  clientId: string;
  sessionTimeoutMs: number;
  rebalanceTimeoutMs: number;
  protocols: Array<{ name: string; metadata: string }>;
  assignment: string;
  lastHeartbeat: number;
  join: ReplyHandle<JoinGroupResult> | null;
  sync: ReplyHandle<{ assignment: string }> | null;
}

interface Group {
  groupId: string;
  state: GroupState;
  protocolType: string;
  protocol: string;
  generation: number;
  leaderId: string;
  members: Map<string, Member>;
  offsets: Map<string, { topic: string; partition: number; offset: number; metadata: string }>;
  joinDeadline: number;
  /** A new group's first rebalance waits until then for more members. */
  minJoinAt?: number;
}

const TICK_MS = 100;
const enc = new TextEncoder();
const dec = new TextDecoder();

export class CoordinatorState {
  readonly groups = new Map<string, Group>();
  readonly replica: string;

  constructor(readonly args: Args) {
    this.replica = replicaAddress(OFFSETS_TOPIC, args.partition, args.broker);
  }

  // Loading -------------------------------------------------------------------------------------

  /** Replays the partition up to its log end (the local replica must be leading it). */
  async load(ctx: Ctx): Promise<void> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        return await this.loadOnce(ctx);
      } catch (e) {
        // The broker agent may start us just before the replica has applied its leadership.
        if (!(e as SkeinError).retriable || Date.now() > deadline) throw e;
        this.groups.clear();
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  private async loadOnce(ctx: Ctx): Promise<void> {
    const { offset: start } = await ctx.ask<{ offset: number }>(this.replica, "ListOffset", { timestamp: -2 }, { timeoutMs: 5_000 });
    let from = start;
    for (;;) {
      const r = await ctx.ask<FetchResult>(this.replica, "Fetch", { fromOffset: from, maxBytes: 8 * 1024 * 1024, maxWaitMs: 0, upToLogEnd: true }, { timeoutMs: 10_000 });
      if (r.data.length === 0) break;
      for (const { header, pos } of iterateBatches(r.data)) {
        for (const rec of decodeRecords(r.data, pos)) if (rec.offset >= from && rec.key) this.replay(dec.decode(rec.key), rec.value ? dec.decode(rec.value) : null);
        from = Math.max(from, header.lastOffset + 1);
      }
      if (from >= r.logEndOffset) break;
    }
  }

  private replay(keyJson: string, valueJson: string | null): void {
    let key: unknown[];
    try {
      key = JSON.parse(keyJson);
    } catch {
      return;
    }
    if (key[0] === "o") {
      const [, groupId, topic, partition] = key as [string, string, string, number];
      const g = this.group(groupId, true);
      const k = `${topic}/${partition}`;
      if (valueJson === null) g.offsets.delete(k);
      else {
        const v = JSON.parse(valueJson) as { offset: number; metadata: string };
        g.offsets.set(k, { topic, partition, offset: v.offset, metadata: v.metadata ?? "" });
      }
    } else if (key[0] === "g") {
      const groupId = key[1] as string;
      if (valueJson === null) {
        this.groups.delete(groupId);
        return;
      }
      const snap = GroupSnapshot.safeParse(JSON.parse(valueJson));
      if (!snap.success) return;
      const g = this.group(groupId, true);
      const s = snap.data;
      g.protocolType = s.protocolType;
      g.protocol = s.protocol;
      g.generation = s.generation;
      g.leaderId = s.leaderId;
      g.members = new Map(s.members.map((m) => [m.memberId, { ...m, lastHeartbeat: Date.now(), join: null, sync: null }]));
      g.state = g.members.size ? GroupState.STABLE : GroupState.EMPTY;
    }
  }

  private group(groupId: string, create: boolean): Group {
    let g = this.groups.get(groupId);
    if (!g) {
      if (!create) throw new SkeinError(ErrorCode.GROUP_ID_NOT_FOUND, `group ${groupId} does not exist`, { group: groupId });
      if (this.groups.size >= this.args.maxGroups) throw new SkeinError(ErrorCode.COORDINATOR_NOT_AVAILABLE, `coordinator full (${this.args.maxGroups} groups)`, { group: groupId });
      g = { groupId, state: GroupState.EMPTY, protocolType: "", protocol: "", generation: 0, leaderId: "", members: new Map(), offsets: new Map(), joinDeadline: 0 };
      this.groups.set(groupId, g);
    }
    return g;
  }

  private checkOwnership(groupId: string): void {
    if (partitionForGroup(groupId, this.args.offsetsPartitions) !== this.args.partition) {
      throw new SkeinError(ErrorCode.NOT_COORDINATOR, `group ${groupId} is not coordinated by partition ${this.args.partition}`, { group: groupId });
    }
  }

  // Writing -------------------------------------------------------------------------------------

  private write(ctx: Ctx, records: Array<{ key: unknown[]; value: unknown }>): Promise<unknown> {
    const batch = encodeBatch(records.map((r) => ({ key: enc.encode(JSON.stringify(r.key)), value: r.value === null ? null : enc.encode(JSON.stringify(r.value)) })));
    return ctx.ask(this.replica, "Produce", { batches: batch, acks: -1, timeoutMs: 5_000 }, { timeoutMs: 6_000 }).catch((e) => {
      throw new SkeinError(ErrorCode.NOT_COORDINATOR, `cannot write to ${OFFSETS_TOPIC}/${this.args.partition}: ${(e as Error).message}`, { partition: this.args.partition }, { cause: e });
    });
  }

  private snapshot(g: Group): GroupSnapshot {
    return {
      protocolType: g.protocolType,
      protocol: g.protocol,
      generation: g.generation,
      leaderId: g.leaderId,
      members: [...g.members.values()].map((m) => ({
        memberId: m.memberId, groupInstanceId: m.groupInstanceId, clientId: m.clientId, sessionTimeoutMs: m.sessionTimeoutMs,
        rebalanceTimeoutMs: m.rebalanceTimeoutMs, protocols: m.protocols, assignment: m.assignment,
      })),
    };
  }

  private persistGroup(g: Group, ctx: Ctx): void {
    void this.write(ctx, [{ key: ["g", g.groupId], value: this.snapshot(g) }]).catch((e) => console.warn(`skein coordinator: ${(e as Error).message}`));
  }

  // Membership ----------------------------------------------------------------------------------

  join(m: z.infer<typeof CoordinatorMessages.JoinGroup>, ctx: Ctx): JoinGroupResult | undefined {
    this.checkOwnership(m.groupId);
    const g = this.group(m.groupId, true);
    if (g.protocolType && g.members.size > 0 && m.protocolType !== g.protocolType) {
      throw new SkeinError(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, `group ${m.groupId} uses protocol type ${g.protocolType}, not ${m.protocolType}`, { group: m.groupId });
    }
    if (g.members.size > 0 && !m.protocols.some((p) => [...g.members.values()].every((x) => x.protocols.some((q) => q.name === p.name)))) {
      throw new SkeinError(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, `group ${m.groupId}: no assignor in common with the current members`, { group: m.groupId });
    }
    let member = m.memberId ? g.members.get(m.memberId) : undefined;
    if (m.memberId && !member && !m.groupInstanceId) throw new SkeinError(ErrorCode.UNKNOWN_MEMBER_ID, `member ${m.memberId} is not in group ${m.groupId}`, { group: m.groupId });
    if (!member && m.groupInstanceId) {
      const known = [...g.members.values()].find((x) => x.groupInstanceId === m.groupInstanceId);
      if (known) return this.rejoinStatic(g, known, m, ctx);
    }
    const joinReply = ctx.deferReply<JoinGroupResult>();
    if (!member) {
      member = {
        memberId: `${m.clientId || "member"}-${randomUUID()}`, groupInstanceId: m.groupInstanceId, clientId: m.clientId, sessionTimeoutMs: m.sessionTimeoutMs,
        rebalanceTimeoutMs: m.rebalanceTimeoutMs, protocols: m.protocols, assignment: "", lastHeartbeat: Date.now(), join: null, sync: null,
      };
      g.members.set(member.memberId, member);
    }
    member.protocols = m.protocols;
    member.sessionTimeoutMs = m.sessionTimeoutMs;
    member.rebalanceTimeoutMs = m.rebalanceTimeoutMs;
    member.lastHeartbeat = Date.now();
    member.join?.reject(new SkeinError(ErrorCode.REBALANCE_IN_PROGRESS, "superseded by a newer JoinGroup", { group: m.groupId }));
    member.join = joinReply;
    g.protocolType = m.protocolType;
    if (g.state !== GroupState.PREPARING_REBALANCE) this.prepareRebalance(g, g.state === GroupState.EMPTY ? this.args.initialRebalanceDelayMs : 0);
    this.maybeCompleteJoin(g);
    return undefined;
  }

  /** A static member restarting within its session keeps its assignment: no rebalance. */
  private rejoinStatic(g: Group, known: Member, m: z.infer<typeof CoordinatorMessages.JoinGroup>, ctx: Ctx): JoinGroupResult | undefined {
    const oldId = known.memberId;
    const newId = `${m.clientId || "member"}-${randomUUID()}`;
    g.members.delete(oldId);
    known.memberId = newId;
    known.lastHeartbeat = Date.now();
    g.members.set(newId, known);
    if (g.leaderId === oldId) g.leaderId = newId;
    const sameProtocols = JSON.stringify(known.protocols) === JSON.stringify(m.protocols);
    if (g.state === GroupState.STABLE && sameProtocols) {
      this.persistGroup(g, ctx);
      return { generation: g.generation, protocol: g.protocol, leaderId: g.leaderId, memberId: newId, members: [] };
    }
    return this.join({ ...m, memberId: newId }, ctx);
  }

  private prepareRebalance(g: Group, delayMs: number): void {
    g.state = GroupState.PREPARING_REBALANCE;
    const timeout = Math.max(0, ...[...g.members.values()].map((m) => m.rebalanceTimeoutMs));
    g.joinDeadline = Date.now() + Math.max(delayMs, Math.min(timeout, 60_000));
    g.minJoinAt = Date.now() + delayMs;
    for (const m of g.members.values()) {
      m.sync?.reject(new SkeinError(ErrorCode.REBALANCE_IN_PROGRESS, `group ${g.groupId} is rebalancing`, { group: g.groupId }));
      m.sync = null;
    }
  }

  private maybeCompleteJoin(g: Group): void {
    if (g.state !== GroupState.PREPARING_REBALANCE) return;
    const now = Date.now();
    const allJoined = [...g.members.values()].every((m) => m.join !== null);
    if (!(allJoined && now >= (g.minJoinAt ?? 0)) && now < g.joinDeadline) return;
    for (const m of [...g.members.values()]) if (!m.join) g.members.delete(m.memberId); // did not rejoin in time
    if (g.members.size === 0) {
      g.state = GroupState.EMPTY;
      g.generation++;
      return;
    }
    g.generation++;
    const members = [...g.members.values()];
    g.protocol = members[0].protocols.map((p) => p.name).find((name) => members.every((m) => m.protocols.some((q) => q.name === name))) ?? members[0].protocols[0].name;
    if (!g.members.has(g.leaderId)) g.leaderId = members[0].memberId;
    g.state = GroupState.COMPLETING_REBALANCE;
    for (const m of members) {
      const reply = m.join!;
      m.join = null;
      m.lastHeartbeat = now;
      reply.resolve({
        generation: g.generation,
        protocol: g.protocol,
        leaderId: g.leaderId,
        memberId: m.memberId,
        members: m.memberId === g.leaderId ? members.map((x) => ({ memberId: x.memberId, groupInstanceId: x.groupInstanceId, metadata: x.protocols.find((p) => p.name === g.protocol)?.metadata ?? "" })) : [],
      });
    }
  }

  private member(g: Group, memberId: string, generation: number | null, groupInstanceId?: string): Member {
    const m = g.members.get(memberId);
    if (!m) {
      if (groupInstanceId && [...g.members.values()].some((x) => x.groupInstanceId === groupInstanceId)) {
        throw new SkeinError(ErrorCode.FENCED_INSTANCE_ID, `instance ${groupInstanceId} was taken over by a newer member`, { group: g.groupId });
      }
      throw new SkeinError(ErrorCode.UNKNOWN_MEMBER_ID, `member ${memberId} is not in group ${g.groupId}`, { group: g.groupId });
    }
    if (generation !== null && generation !== g.generation) {
      throw new SkeinError(ErrorCode.ILLEGAL_GENERATION, `generation ${generation} of group ${g.groupId} is stale (current ${g.generation})`, { group: g.groupId, generation: g.generation });
    }
    return m;
  }

  sync(s: z.infer<typeof CoordinatorMessages.SyncGroup>, ctx: Ctx): { assignment: string } | undefined {
    this.checkOwnership(s.groupId);
    const g = this.group(s.groupId, false);
    const m = this.member(g, s.memberId, s.generation, s.groupInstanceId);
    m.lastHeartbeat = Date.now();
    if (g.state === GroupState.PREPARING_REBALANCE) throw new SkeinError(ErrorCode.REBALANCE_IN_PROGRESS, `group ${g.groupId} is rebalancing`, { group: g.groupId });
    if (g.state === GroupState.STABLE) return { assignment: m.assignment };
    m.sync = ctx.deferReply();
    if (s.memberId === g.leaderId) {
      const given = new Map(s.assignments.map((a) => [a.memberId, a.assignment]));
      for (const x of g.members.values()) x.assignment = given.get(x.memberId) ?? "";
      g.state = GroupState.STABLE;
      const generation = g.generation;
      void this.write(ctx, [{ key: ["g", g.groupId], value: this.snapshot(g) }]).then(
        () => this.finishSync(g, generation, null),
        (e) => this.finishSync(g, generation, e),
      );
    }
    return undefined;
  }

  /** Answers parked SyncGroups once the rebalance is durable in __consumer_offsets. */
  private finishSync(g: Group, generation: number, error: unknown): void {
    if (g.generation !== generation) return;
    for (const m of g.members.values()) {
      if (!m.sync) continue;
      if (error) m.sync.reject(error);
      else m.sync.resolve({ assignment: m.assignment });
      m.sync = null;
    }
  }

  heartbeat(h: z.infer<typeof CoordinatorMessages.Heartbeat>): Record<string, never> {
    this.checkOwnership(h.groupId);
    const g = this.group(h.groupId, false);
    const m = this.member(g, h.memberId, null, h.groupInstanceId);
    m.lastHeartbeat = Date.now();
    if (g.state === GroupState.PREPARING_REBALANCE) throw new SkeinError(ErrorCode.REBALANCE_IN_PROGRESS, `group ${g.groupId} is rebalancing`, { group: g.groupId });
    if (h.generation !== g.generation) throw new SkeinError(ErrorCode.ILLEGAL_GENERATION, `generation ${h.generation} is stale (current ${g.generation})`, { group: g.groupId, generation: g.generation });
    return {};
  }

  leave(l: z.infer<typeof CoordinatorMessages.LeaveGroup>, ctx: Ctx): Record<string, never> {
    this.checkOwnership(l.groupId);
    const g = this.group(l.groupId, false);
    const m = l.memberId ? g.members.get(l.memberId) : [...g.members.values()].find((x) => x.groupInstanceId === l.groupInstanceId);
    if (!m) throw new SkeinError(ErrorCode.UNKNOWN_MEMBER_ID, `no such member in group ${l.groupId}`, { group: l.groupId });
    this.removeMember(g, m, ctx);
    return {};
  }

  private removeMember(g: Group, m: Member, ctx: Ctx): void {
    g.members.delete(m.memberId);
    const gone = new SkeinError(ErrorCode.UNKNOWN_MEMBER_ID, `member ${m.memberId} left group ${g.groupId}`, { group: g.groupId });
    m.join?.reject(gone);
    m.sync?.reject(gone);
    if (g.members.size === 0) {
      g.state = GroupState.EMPTY;
      g.generation++;
      g.leaderId = "";
      this.persistGroup(g, ctx);
      return;
    }
    if (g.state !== GroupState.PREPARING_REBALANCE) this.prepareRebalance(g, 0);
    this.maybeCompleteJoin(g);
  }

  tick(ctx: Ctx): void {
    const now = Date.now();
    for (const g of this.groups.values()) {
      for (const m of [...g.members.values()]) {
        if (m.join === null && now - m.lastHeartbeat > m.sessionTimeoutMs) {
          console.warn(`skein coordinator: member ${m.memberId} of ${g.groupId} missed its session timeout (${m.sessionTimeoutMs} ms); removing it`);
          this.removeMember(g, m, ctx);
        }
      }
      this.maybeCompleteJoin(g);
    }
  }

  // Offsets -------------------------------------------------------------------------------------

  commit(c: z.infer<typeof CoordinatorMessages.OffsetCommit>, ctx: Ctx): undefined {
    this.checkOwnership(c.groupId);
    const g = this.group(c.groupId, true);
    if (c.generation < 0) {
      if (g.members.size > 0) throw new SkeinError(ErrorCode.NON_EMPTY_GROUP, `group ${c.groupId} has active members; only they may commit`, { group: c.groupId });
    } else {
      this.member(g, c.memberId, c.generation);
      // As Kafka: members of the current generation may commit while the group prepares a
      // rebalance (they still own their partitions, and commit what they processed before
      // giving any up); between join and sync the generation is new and nobody owns anything yet.
      if (g.state === GroupState.COMPLETING_REBALANCE) throw new SkeinError(ErrorCode.REBALANCE_IN_PROGRESS, `group ${g.groupId} is completing a rebalance`, { group: g.groupId });
    }
    const reply = ctx.deferReply();
    const now = Date.now();
    this.write(ctx, c.offsets.map((o) => ({ key: ["o", c.groupId, o.topic, o.partition], value: { offset: o.offset, metadata: o.metadata, commitTimestamp: now } }))).then(() => {
      for (const o of c.offsets) g.offsets.set(`${o.topic}/${o.partition}`, { topic: o.topic, partition: o.partition, offset: o.offset, metadata: o.metadata });
      reply.resolve({});
    }, reply.reject);
    return undefined;
  }

  fetchOffsets(f: z.infer<typeof CoordinatorMessages.OffsetFetch>): { offsets: CommittedOffset[] } {
    this.checkOwnership(f.groupId);
    const g = this.groups.get(f.groupId);
    const all = g ? [...g.offsets.values()] : [];
    if (!f.partitions) return { offsets: all };
    return {
      offsets: f.partitions.map((p) => {
        const o = g?.offsets.get(`${p.topic}/${p.partition}`);
        return { topic: p.topic, partition: p.partition, offset: o?.offset ?? -1, metadata: o?.metadata ?? "" };
      }),
    };
  }

  describe(groupId: string): GroupDescription {
    this.checkOwnership(groupId);
    const g = this.groups.get(groupId);
    if (!g) return { groupId, state: GroupState.DEAD, protocolType: "", protocol: "", generation: 0, leaderId: "", members: [], offsets: [] };
    return {
      groupId, state: g.state, protocolType: g.protocolType, protocol: g.protocol, generation: g.generation, leaderId: g.leaderId,
      members: [...g.members.values()].map((m) => ({ memberId: m.memberId, groupInstanceId: m.groupInstanceId, clientId: m.clientId, assignment: m.assignment, metadata: m.protocols.find((p) => p.name === g.protocol)?.metadata ?? "" })),
      offsets: [...g.offsets.values()],
    };
  }

  list(): { groups: Array<{ groupId: string; state: GroupState; protocolType: string; members: number }> } {
    return { groups: [...this.groups.values()].map((g) => ({ groupId: g.groupId, state: g.state, protocolType: g.protocolType, members: g.members.size })) };
  }

  async deleteGroup(groupId: string, ctx: Ctx): Promise<{ deleted: string }> {
    this.checkOwnership(groupId);
    const g = this.group(groupId, false);
    if (g.members.size > 0) throw new SkeinError(ErrorCode.NON_EMPTY_GROUP, `group ${groupId} has ${g.members.size} active member(s)`, { group: groupId });
    await this.write(ctx, [{ key: ["g", groupId], value: null }, ...[...g.offsets.values()].map((o) => ({ key: ["o", groupId, o.topic, o.partition], value: null }))]);
    this.groups.delete(groupId);
    return { deleted: groupId };
  }

  close(): void {
    const moved = new SkeinError(ErrorCode.NOT_COORDINATOR, `coordinator for ${OFFSETS_TOPIC}/${this.args.partition} stopped`, { partition: this.args.partition });
    for (const g of this.groups.values()) {
      for (const m of g.members.values()) {
        m.join?.reject(moved);
        m.sync?.reject(moved);
      }
    }
  }
}

export const GroupCoordinatorActor = defineActor({
  kind: "group-coordinator",
  args: CoordinatorArgs,
  messages: CoordinatorMessages,
  async init(ctx) {
    const state = new CoordinatorState(ctx.args);
    await state.load(ctx);
    return state;
  },
  started(_s, ctx) {
    ctx.schedule(TICK_MS, "Tick", {});
  },
  stopped: (s) => s.close(),
  handlers: {
    JoinGroup: (s, m, ctx) => s.join(m, ctx),
    SyncGroup: (s, m, ctx) => s.sync(m, ctx),
    Heartbeat: (s, m) => s.heartbeat(m),
    LeaveGroup: (s, m, ctx) => s.leave(m, ctx),
    OffsetCommit: (s, m, ctx) => s.commit(m, ctx),
    OffsetFetch: (s, m) => s.fetchOffsets(m),
    DescribeGroup: (s, m) => s.describe(m.groupId),
    ListGroups: (s) => s.list(),
    DeleteGroup: (s, m, ctx) => s.deleteGroup(m.groupId, ctx),
    Tick: (s, _m, ctx) => {
      s.tick(ctx);
      ctx.schedule(TICK_MS, "Tick", {});
    },
  },
});
