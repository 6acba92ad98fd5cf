// Group membership of a consumer actor (the client side of Kafka's classic protocol):
// join → (leader runs the assignor) → sync → heartbeat; auto-commit of what the facade has
// processed; cooperative revocation that waits until the facade holds no records, so a
// partition is never processed by two members at once; fencing on a stale generation.

import type { ActorContext, ReplyHandle } from "../../runtime/actor.js";
import { ErrorCode, SkeinError, isSkeinError } from "../../protocol/errors.js";
import type { ConsumerArgs } from "../../protocol/client.js";
import {
  ConsumerAssignment,
  ConsumerSubscription,
  fromBase64Json,
  toBase64Json,
  type CommittedOffset,
  type JoinGroupResult,
} from "../../protocol/groups.js";
import { assign, isCooperative, type TopicPartition } from "./assignors.js";
import { COORDINATOR_RETRY, findCoordinator } from "./discovery.js";
import type { ConsumerState } from "../client/consumer.js";

type GroupConfig = NonNullable<ConsumerArgs["group"]>;
type Ctx = ActorContext<ConsumerArgs>;
type StepName = "joined" | "synced" | "heartbeat" | "offsets" | "committed" | "revoked" | "coordinator" | "metadata";

const TICK_MS = 100;
/** How often members look for partitions added to their topics, ms (Kafka: metadata.max.age). */
const METADATA_CHECK_MS = 2_000;
const key = (tp: TopicPartition) => `${tp.topic}/${tp.partition}`;
/** `metadata`: an application string stored with the offset (Kafka's commit metadata). */
type OffsetToCommit = TopicPartition & { offset: number; metadata?: string };

export class GroupMembership {
  memberId = "";
  generation = -1;
  protocol = "";
  phase: "idle" | "joining" | "syncing" | "stable" | "left" = "idle";
  topics: string[] = [];
  owned: TopicPartition[] = [];
  coordinator: string | null = null;
  rejoinWanted = false;
  /** Partitions to give up once the facade holds no records; then rejoin. */
  revokePending: TopicPartition[] = [];
  /** Eager protocol: give everything up before joining. */
  eagerRevokeBeforeJoin = false;
  lastCommitted = new Map<string, number>();
  lastHeartbeatAt = 0;
  heartbeatInFlight = false;
  lastAutoCommitAt = Date.now();
  retryAt = 0;
  /** Partition counts of the subscribed topics as last seen; a change triggers a rebalance. */
  partitionCounts = new Map<string, number>();
  lastMetadataCheckAt = 0;
  metadataCheckInFlight = false;
  /** Number of the latest JoinGroup sent; answers to older ones are stale. */
  joinSeq = 0;
  /** Commits of revoked partitions not yet answered: no rejoin until they are. */
  revokeCommitsInFlight = 0;
  /** When this member left for exceeding maxPollIntervalMs (-1: never). */
  leftStuckAt = -1;

  constructor(
    private readonly state: ConsumerState,
    private readonly cfg: GroupConfig,
  ) {}

  private get cooperative(): boolean {
    return isCooperative(this.protocol || this.cfg.assignors[0]);
  }

  start(ctx: Ctx): void {
    ctx.schedule(TICK_MS, "GroupTick", {});
  }

  subscribe(topics: string[], ctx: Ctx): { subscribed: string[] } {
    this.topics = [...new Set(topics)].sort();
    this.requestRejoin(ctx);
    return { subscribed: this.topics };
  }

  private requestRejoin(ctx: Ctx): void {
    if (this.phase === "left") return;
    this.rejoinWanted = true;
    if (!this.cooperative && this.owned.length > 0) {
      this.eagerRevokeBeforeJoin = true;
      this.revoke(this.owned, ctx);
    }
    this.tick(ctx, false);
  }

  // Revocation ------------------------------------------------------------------------------------

  private revoke(partitions: TopicPartition[], ctx: Ctx): void {
    const known = new Set(this.revokePending.map(key));
    for (const tp of partitions) {
      const a = this.state.assigned.get(key(tp));
      if (a) a.revoking = true;
      if (!known.has(key(tp))) this.revokePending.push(tp);
    }
    if (this.state.facadeIdle) this.onFacadeIdle(ctx);
  }

  /** The facade holds no records now: finish pending revocations (commit, then let go). */
  onFacadeIdle(ctx: Ctx): void {
    if (this.revokePending.length === 0) return;
    const revoked = this.revokePending.splice(0);
    const offsets = this.uncommitted(revoked);
    this.state.unassign(revoked);
    const gone = new Set(revoked.map(key));
    this.owned = this.owned.filter((tp) => !gone.has(key(tp)));
    this.state.events.push({ type: "group.revoke", generation: this.generation, memberId: this.memberId, partitions: revoked, at: Date.now() });
    this.eagerRevokeBeforeJoin = false;
    this.state.answerPolls();
    if (offsets.length === 0) return this.afterRevoke(ctx);
    // Rejoin only once the commit is durable (Kafka commits synchronously in
    // onPartitionsRevoked for the same reason): the new owner fetches the committed offset as
    // soon as the rebalance completes, and a commit still being written then made it start
    // from an older offset and process records twice (seen in the at-least-once test).
    this.revokeCommitsInFlight++;
    this.run(ctx, "revoked", () => this.sendCommit(ctx, offsets));
  }

  private afterRevoke(ctx: Ctx): void {
    this.rejoinWanted = true;
    this.tick(ctx, false);
  }

  // Protocol steps ----------------------------------------------------------------------------------

  private run(ctx: Ctx, step: StepName, work: () => Promise<unknown>): void {
    const generation = this.generation;
    const joinSeq = this.joinSeq;
    work().then(
      (body) => ctx.tell(ctx.self, "GroupStep", { step, generation, joinSeq, body }),
      (e) => {
        const err = isSkeinError(e) ? e : new SkeinError(ErrorCode.UNKNOWN, String((e as Error)?.message ?? e));
        ctx.tell(ctx.self, "GroupStep", { step, generation, joinSeq, error: { code: err.code, message: err.message } });
      },
    );
  }

  private async ask<T>(ctx: Ctx, type: string, body: unknown, timeoutMs: number): Promise<T> {
    this.coordinator ??= await findCoordinator(this.state.meta, (a, t, b, o) => ctx.ask(a, t, b, o), this.cfg.groupId);
    return ctx.ask<T>(this.coordinator, type, body, { timeoutMs });
  }

  private join(ctx: Ctx): void {
    this.joinSeq++;
    this.phase = "joining";
    this.rejoinWanted = false;
    const metadata = toBase64Json({ topics: this.topics, owned: this.cooperative ? this.owned : [] } satisfies ConsumerSubscription);
    this.run(ctx, "joined", () =>
      this.ask<JoinGroupResult>(
        ctx,
        "JoinGroup",
        {
          groupId: this.cfg.groupId,
          memberId: this.memberId,
          groupInstanceId: this.cfg.groupInstanceId,
          clientId: this.cfg.clientId,
          sessionTimeoutMs: this.cfg.sessionTimeoutMs,
          rebalanceTimeoutMs: this.cfg.rebalanceTimeoutMs,
          protocolType: "consumer",
          protocols: this.cfg.assignors.map((name) => ({ name, metadata })),
        },
        this.cfg.rebalanceTimeoutMs + 5_000,
      ),
    );
  }

  onStep(m: { step: StepName; generation: number; joinSeq?: number; body?: unknown; error?: { code: string; message: string } }, ctx: Ctx): void {
    if (m.step === "joined" && m.joinSeq !== this.joinSeq) return; // a JoinGroup this member has since replaced
    if (m.step === "revoked") {
      this.revokeCommitsInFlight--;
      // Refused or failed, the partitions are gone all the same; their next owner starts from
      // the previous commit (at-least-once).
      if (m.error) console.warn(`skein consumer ${this.cfg.groupId}: commit of revoked partitions failed: ${m.error.message}`);
      return this.afterRevoke(ctx);
    }
    if (m.error && m.generation !== this.generation && (m.step === "heartbeat" || m.step === "committed" || m.step === "offsets" || m.step === "synced")) {
      // The answer to a request of an earlier generation (a heartbeat or auto-commit sent just
      // before a rebalance): it says nothing about the current one. Treating its
      // ILLEGAL_GENERATION as being fenced made the member rejoin, which started another
      // rebalance, which made the next in-flight commit stale: a rebalance storm (thousands of
      // generations seen in a test). Kafka's consumer also ignores these when its generation moved.
      if (m.step === "heartbeat") this.heartbeatInFlight = false;
      return;
    }
    if (m.error) return this.onError(m.step, m.error, ctx);
    switch (m.step) {
      case "joined":
        return void this.onJoined(m.body as JoinGroupResult, ctx).catch((e) => this.onError("synced", { code: (e as SkeinError).code ?? ErrorCode.UNKNOWN, message: String((e as Error).message) }, ctx));
      case "synced":
        if (m.generation === this.generation) this.onSynced(m.body as { assignment: string }, ctx);
        return;
      case "offsets":
        if (m.generation === this.generation) this.onOffsets(m.body as { offsets: CommittedOffset[] }, ctx);
        return;
      case "heartbeat":
        this.heartbeatInFlight = false;
        return;
      case "committed":
        return;
      case "metadata":
        this.metadataCheckInFlight = false;
        if (m.body === true) {
          console.warn(`skein consumer ${this.cfg.groupId}: partition count of a subscribed topic changed; rebalancing`);
          this.requestRejoin(ctx);
        }
        return;
    }
  }

  private async onJoined(r: JoinGroupResult, ctx: Ctx): Promise<void> {
    this.memberId = r.memberId;
    this.generation = r.generation;
    this.protocol = r.protocol;
    this.phase = "syncing";
    let assignments: Array<{ memberId: string; assignment: string }> = [];
    if (r.leaderId === r.memberId && r.members.length > 0) {
      const members = r.members.map((x) => {
        const sub = fromBase64Json(ConsumerSubscription, x.metadata) ?? { topics: [], owned: [] };
        return { memberId: x.memberId, topics: sub.topics, owned: sub.owned };
      });
      const counts = new Map<string, number>();
      for (const t of new Set(members.flatMap((x) => x.topics))) {
        const topic = await this.state.meta.getTopic(t);
        if (topic) counts.set(t, topic.partitions);
      }
      const result = assign(r.protocol, members, counts);
      assignments = [...result].map(([memberId, partitions]) => ({ memberId, assignment: toBase64Json({ partitions } satisfies ConsumerAssignment) }));
    }
    this.run(ctx, "synced", () =>
      this.ask(ctx, "SyncGroup", { groupId: this.cfg.groupId, generation: r.generation, memberId: r.memberId, groupInstanceId: this.cfg.groupInstanceId, assignments }, this.cfg.rebalanceTimeoutMs + 5_000),
    );
  }

  private onSynced(r: { assignment: string }, ctx: Ctx): void {
    const next = fromBase64Json(ConsumerAssignment, r.assignment)?.partitions ?? [];
    const nextKeys = new Set(next.map(key));
    const ownedKeys = new Set(this.owned.map(key));
    const revoked = this.owned.filter((tp) => !nextKeys.has(key(tp)));
    const added = next.filter((tp) => !ownedKeys.has(key(tp)));
    this.phase = "stable";
    this.lastHeartbeatAt = Date.now();
    this.owned = [...this.owned.filter((tp) => nextKeys.has(key(tp))), ...added];
    this.state.events.push({ type: "group.join", generation: this.generation, memberId: this.memberId, partitions: next, at: Date.now() });
    if (revoked.length) {
      // Cooperative: we still own these until the facade is done with them; then commit,
      // let go and rejoin so the group can hand them to their new owner.
      this.owned.push(...revoked);
      this.revoke(revoked, ctx);
    }
    if (added.length) {
      this.run(ctx, "offsets", () => this.ask(ctx, "OffsetFetch", { groupId: this.cfg.groupId, partitions: added }, 10_000));
    }
    this.state.answerPolls();
  }

  private onOffsets(r: { offsets: CommittedOffset[] }, ctx: Ctx): void {
    const ownedKeys = new Set(this.owned.map(key));
    const add = r.offsets.filter((o) => ownedKeys.has(key(o))).map((o) => ({ topic: o.topic, partition: o.partition, offset: o.offset }));
    for (const o of add) if (o.offset >= 0) this.lastCommitted.set(key(o), o.offset);
    this.state.addAssigned(add, ctx);
  }

  /** True when a subscribed topic gained partitions since the last look (first look only records). */
  private async partitionCountsChanged(): Promise<boolean> {
    let changed = false;
    for (const t of this.topics) {
      const topic = await this.state.meta.getTopic(t);
      const count = topic?.partitions ?? 0;
      const known = this.partitionCounts.get(t);
      if (known !== undefined && known !== count) changed = true;
      this.partitionCounts.set(t, count);
    }
    return changed;
  }

  private onError(step: StepName, error: { code: string; message: string }, ctx: Ctx): void {
    if (step === "heartbeat") this.heartbeatInFlight = false;
    if (step === "metadata") {
      this.metadataCheckInFlight = false;
      return;
    }
    if (COORDINATOR_RETRY.has(error.code)) this.coordinator = null;
    const fenced = error.code === ErrorCode.ILLEGAL_GENERATION || error.code === ErrorCode.UNKNOWN_MEMBER_ID || error.code === ErrorCode.FENCED_INSTANCE_ID;
    if (fenced && (step !== "committed" || this.phase === "stable")) {
      // A refused commit means the same as a refused heartbeat: we are no longer a member.
      this.fenced(error.code, ctx);
      return;
    }
    if (step === "committed") {
      // Retried by the next auto-commit; during a rebalance that is expected.
      if (error.code !== ErrorCode.REBALANCE_IN_PROGRESS && !fenced) console.warn(`skein consumer ${this.cfg.groupId}: commit failed: ${error.message}`);
      return;
    }
    if (step === "heartbeat" && error.code !== ErrorCode.REBALANCE_IN_PROGRESS) return; // try again next interval
    // A heartbeat told of a rebalance this member is already joining: a second JoinGroup would
    // supersede the first, whose refusal would start a third (a rebalance storm under load).
    if (step === "heartbeat" && (this.phase === "joining" || this.phase === "syncing")) return;
    if (step === "offsets") {
      this.retryAt = Date.now() + 200;
      this.run(ctx, "offsets", () => this.ask(ctx, "OffsetFetch", { groupId: this.cfg.groupId, partitions: this.owned.filter((tp) => !this.state.assigned.has(key(tp))) }, 10_000));
      return;
    }
    // joined / synced failed, or the group is rebalancing: join again (after a short backoff).
    if (this.phase !== "left") this.phase = "idle";
    this.retryAt = error.code === ErrorCode.REBALANCE_IN_PROGRESS ? 0 : Date.now() + 200;
    this.requestRejoin(ctx);
  }

  /** Our generation is gone: the partitions may already belong to others. Drop without committing. */
  private fenced(code: string, ctx: Ctx): void {
    const lost = this.owned;
    this.owned = [];
    this.revokePending = [];
    this.state.unassign(lost);
    if (code !== ErrorCode.ILLEGAL_GENERATION) this.memberId = "";
    this.state.events.push({ type: "group.fenced", generation: this.generation, memberId: this.memberId, partitions: lost, at: Date.now() });
    this.state.answerPolls();
    if (this.phase !== "left") this.phase = "idle";
    this.requestRejoin(ctx);
  }

  // Timers ------------------------------------------------------------------------------------------

  tick(ctx: Ctx, reschedule = true): void {
    if (reschedule) ctx.schedule(TICK_MS, "GroupTick", {});
    if (this.phase === "left" || this.topics.length === 0) return;
    const now = Date.now();
    const revoking = this.revokePending.length > 0 || this.revokeCommitsInFlight > 0;
    // Left for being stuck: rejoining before the application polls again would take
    // partitions it cannot process and leave once more (Kafka rejoins on the next poll too).
    const stuck = this.state.lastPollAt <= this.leftStuckAt;
    if (this.phase === "idle" && this.rejoinWanted && !this.eagerRevokeBeforeJoin && !revoking && !stuck && now >= this.retryAt) {
      this.join(ctx);
      return;
    }
    if (this.phase === "stable" && this.rejoinWanted && !revoking) {
      this.join(ctx);
      return;
    }
    if (this.phase === "stable" && !this.heartbeatInFlight && now - this.lastHeartbeatAt >= this.cfg.heartbeatIntervalMs) {
      this.heartbeatInFlight = true;
      this.lastHeartbeatAt = now;
      this.run(ctx, "heartbeat", () =>
        this.ask(ctx, "Heartbeat", { groupId: this.cfg.groupId, generation: this.generation, memberId: this.memberId, groupInstanceId: this.cfg.groupInstanceId }, this.cfg.heartbeatIntervalMs + 5_000),
      );
    }
    if (this.phase === "stable" && !this.metadataCheckInFlight && now - this.lastMetadataCheckAt >= METADATA_CHECK_MS) {
      this.lastMetadataCheckAt = now;
      this.metadataCheckInFlight = true;
      this.run(ctx, "metadata", () => this.partitionCountsChanged());
    }
    // A cooperative member keeps its partitions while it rejoins, and may wait there a whole
    // session timeout for a dead member: it keeps committing (the coordinator accepts commits
    // of the current generation until the join completes).
    const mayCommit = this.phase === "stable" || (this.phase === "joining" && this.cooperative && this.generation >= 0);
    if (this.cfg.autoCommit && mayCommit && now - this.lastAutoCommitAt >= this.cfg.autoCommitIntervalMs) {
      this.lastAutoCommitAt = now;
      this.commitProcessed(ctx, this.owned);
    }
    if (!this.state.facadeIdle && now - this.state.lastPollAt > this.cfg.maxPollIntervalMs && this.phase === "stable") {
      console.warn(`skein consumer ${this.cfg.groupId}: no poll for ${this.cfg.maxPollIntervalMs} ms (maxPollIntervalMs); leaving the group until the application polls again`);
      this.leftStuckAt = now;
      const lost = this.owned;
      this.owned = [];
      this.state.unassign(lost);
      // Told on the application's next poll, once it is unstuck: these are no longer its own.
      this.state.events.push({ type: "group.leave", generation: this.generation, memberId: this.memberId, partitions: lost, at: now });
      const memberId = this.memberId;
      this.memberId = "";
      this.phase = "idle";
      this.rejoinWanted = true;
      this.run(ctx, "committed", () => this.ask(ctx, "LeaveGroup", { groupId: this.cfg.groupId, memberId }, 5_000));
    }
  }

  /** Commits processed offsets of `partitions` that moved forward since the last commit. */
  private commitProcessed(ctx: Ctx, partitions: TopicPartition[], reply?: ReplyHandle<unknown>): void {
    const offsets = this.uncommitted(partitions);
    if (offsets.length === 0) {
      reply?.resolve({ committed: [] });
      return;
    }
    if (reply) this.sendCommit(ctx, offsets).then(reply.resolve, reply.reject);
    else this.run(ctx, "committed", () => this.sendCommit(ctx, offsets));
  }

  /** Offsets of `partitions` processed beyond what was last committed. */
  private uncommitted(partitions: TopicPartition[]): OffsetToCommit[] {
    const offsets: OffsetToCommit[] = [];
    for (const tp of partitions) {
      const done = this.state.processed.get(key(tp));
      if (done === undefined || done <= (this.lastCommitted.get(key(tp)) ?? -1)) continue;
      offsets.push({ topic: tp.topic, partition: tp.partition, offset: done });
    }
    return offsets;
  }

  /** Commits; `lastCommitted` moves only once the coordinator has it durably. */
  private async sendCommit(ctx: Ctx, offsets: OffsetToCommit[]): Promise<{ committed: OffsetToCommit[] }> {
    const body = { groupId: this.cfg.groupId, generation: this.generation, memberId: this.memberId, offsets };
    await this.ask(ctx, "OffsetCommit", body, 10_000);
    for (const o of offsets) this.lastCommitted.set(key(o), o.offset);
    return { committed: offsets };
  }

  /** Explicit commit: the given offsets (may go backwards after a seek) or everything processed. */
  commit(offsets: OffsetToCommit[] | null, ctx: Ctx): undefined {
    const reply = ctx.deferReply();
    if (this.phase !== "stable") {
      reply.reject(new SkeinError(ErrorCode.REBALANCE_IN_PROGRESS, `consumer of group ${this.cfg.groupId} is rebalancing; commit again after it`, { group: this.cfg.groupId }));
      return undefined;
    }
    if (offsets) this.sendCommit(ctx, offsets).then(reply.resolve, reply.reject);
    else this.commitProcessed(ctx, this.owned, reply);
    return undefined;
  }

  async leave(ctx: Ctx): Promise<{ left: boolean }> {
    if (this.phase === "stable") {
      const offsets = this.owned
        .map((tp) => ({ topic: tp.topic, partition: tp.partition, offset: this.state.processed.get(key(tp)) ?? -1 }))
        .filter((o) => o.offset > (this.lastCommitted.get(key(o)) ?? -1));
      if (offsets.length) await this.ask(ctx, "OffsetCommit", { groupId: this.cfg.groupId, generation: this.generation, memberId: this.memberId, offsets }, 10_000).catch(() => undefined);
    }
    const wasMember = this.memberId !== "";
    this.phase = "left";
    // A static member does not leave: it may come back within its session timeout.
    if (wasMember && !this.cfg.groupInstanceId) {
      await this.ask(ctx, "LeaveGroup", { groupId: this.cfg.groupId, memberId: this.memberId }, 5_000).catch(() => undefined);
    }
    return { left: wasMember };
  }
}
