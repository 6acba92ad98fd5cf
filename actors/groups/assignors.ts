// Partition assignors, run by the group leader's client (as in Kafka). Pure functions.
//   range               per topic, contiguous ranges to members sorted by id (eager)
//   roundrobin          all partitions, sorted, dealt round-robin to subscribed members (eager)
//   cooperative-sticky  keeps what members own, balances the rest; a partition that must move
//                       is withheld this generation (its owner revokes it and rejoins, then it
//                       is assigned), so nobody ever consumes a partition another member still
//                       owns and members never stop consuming what they keep.

export interface TopicPartition {
  topic: string;
  partition: number;
}

export interface MemberSubscription {
  memberId: string;
  topics: string[];
  /** Partitions the member owned before this rebalance (cooperative only). */
  owned: TopicPartition[];
}

export type Assignment = Map<string, TopicPartition[]>;
export const ASSIGNORS = ["cooperative-sticky", "range", "roundrobin"] as const;
export type AssignorName = (typeof ASSIGNORS)[number];

/** Eager assignors make every member give up all partitions when a rebalance starts. */
export function isCooperative(name: string): boolean {
  return name === "cooperative-sticky";
}

const key = (tp: TopicPartition) => `${tp.topic}\u0000${tp.partition}`;

function emptyAssignment(members: MemberSubscription[]): Assignment {
  return new Map(members.map((m) => [m.memberId, [] as TopicPartition[]]));
}

function sortedMembers(members: MemberSubscription[]): MemberSubscription[] {
  return [...members].sort((a, b) => (a.memberId < b.memberId ? -1 : a.memberId > b.memberId ? 1 : 0));
}

export function assign(name: string, members: MemberSubscription[], partitionsPerTopic: Map<string, number>): Assignment {
  if (name === "range") return rangeAssign(members, partitionsPerTopic);
  if (name === "roundrobin") return roundRobinAssign(members, partitionsPerTopic);
  if (name === "cooperative-sticky") return cooperativeStickyAssign(members, partitionsPerTopic);
  throw new Error(`unknown assignor "${name}" (known: ${ASSIGNORS.join(", ")})`);
}

export function rangeAssign(members: MemberSubscription[], partitionsPerTopic: Map<string, number>): Assignment {
  const out = emptyAssignment(members);
  const topics = [...new Set(members.flatMap((m) => m.topics))].sort();
  for (const topic of topics) {
    const n = partitionsPerTopic.get(topic) ?? 0;
    const subs = sortedMembers(members.filter((m) => m.topics.includes(topic)));
    if (subs.length === 0) continue;
    const per = Math.floor(n / subs.length);
    const extra = n % subs.length;
    let p = 0;
    subs.forEach((m, i) => {
      const count = per + (i < extra ? 1 : 0);
      for (let j = 0; j < count; j++) out.get(m.memberId)!.push({ topic, partition: p++ });
    });
  }
  return out;
}

export function roundRobinAssign(members: MemberSubscription[], partitionsPerTopic: Map<string, number>): Assignment {
  const out = emptyAssignment(members);
  const subs = sortedMembers(members);
  const all: TopicPartition[] = [];
  for (const topic of [...new Set(members.flatMap((m) => m.topics))].sort()) {
    for (let p = 0; p < (partitionsPerTopic.get(topic) ?? 0); p++) all.push({ topic, partition: p });
  }
  let i = 0;
  for (const tp of all) {
    for (let tries = 0; tries < subs.length; tries++) {
      const m = subs[i++ % subs.length];
      if (m.topics.includes(tp.topic)) {
        out.get(m.memberId)!.push(tp);
        break;
      }
    }
  }
  return out;
}

export function cooperativeStickyAssign(members: MemberSubscription[], partitionsPerTopic: Map<string, number>): Assignment {
  const subs = sortedMembers(members);
  const out = emptyAssignment(subs);
  const exists = (tp: TopicPartition) => tp.partition < (partitionsPerTopic.get(tp.topic) ?? 0);
  const previousOwner = new Map<string, string>();
  // 1. Keep what each member validly owns (first claim wins on a conflict).
  for (const m of subs) {
    for (const tp of m.owned) {
      const k = key(tp);
      if (!exists(tp) || !m.topics.includes(tp.topic) || previousOwner.has(k)) continue;
      previousOwner.set(k, m.memberId);
      out.get(m.memberId)!.push({ topic: tp.topic, partition: tp.partition });
    }
  }
  // 2. Give every unowned partition to the least-loaded eligible member.
  const eligible = (tp: TopicPartition) => subs.filter((m) => m.topics.includes(tp.topic));
  const load = (id: string) => out.get(id)!.length;
  for (const topic of [...new Set(subs.flatMap((m) => m.topics))].sort()) {
    for (let p = 0; p < (partitionsPerTopic.get(topic) ?? 0); p++) {
      const tp = { topic, partition: p };
      if (previousOwner.has(key(tp))) continue;
      const candidates = eligible(tp);
      if (candidates.length === 0) continue;
      const target = candidates.reduce((best, m) => (load(m.memberId) < load(best.memberId) ? m : best));
      out.get(target.memberId)!.push(tp);
    }
  }
  // 3. Balance: move from the most to the least loaded member while they differ by more than one.
  for (let guard = 0; guard < 100_000; guard++) {
    const byLoad = [...subs].sort((a, b) => load(a.memberId) - load(b.memberId) || (a.memberId < b.memberId ? -1 : 1));
    const poorest = byLoad[0];
    const richest = byLoad[byLoad.length - 1];
    if (!poorest || load(richest.memberId) - load(poorest.memberId) <= 1) break;
    const list = out.get(richest.memberId)!;
    const idx = list.findIndex((tp) => poorest.topics.includes(tp.topic));
    if (idx < 0) break;
    out.get(poorest.memberId)!.push(list.splice(idx, 1)[0]);
  }
  // 4. Cooperative: withhold partitions that change owner until their owner has revoked them.
  for (const [memberId, list] of out) {
    out.set(
      memberId,
      list.filter((tp) => {
        const owner = previousOwner.get(key(tp));
        return owner === undefined || owner === memberId;
      }),
    );
  }
  for (const list of out.values()) list.sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition));
  return out;
}
