// Actor addresses and their NATS subjects.
//
// An address is `path@node`, e.g. `replica/orders/3@b2`: slash-separated path segments, then
// the node (process) that hosts the actor. A node-less address (`controller`) names a
// cluster-wide actor. Subjects put the node first so one wildcard covers a whole node:
//
//   skein.<cluster>.a.<node>.<seg1>.<seg2>…        (node token `_` when there is none)
//
// Tokens are escaped reversibly: [A-Za-z0-9-] stay as they are, every other byte of the
// UTF-8 form becomes `_` + two lowercase hex digits. So `.`, `*`, `>` and spaces never reach
// NATS, `_` alone is free to mean "no node", and subject → address is exact.

import { ErrorCode, SkeinError } from "./errors.js";

export interface Address {
  /** Path segments, at least one, none empty. */
  path: string[];
  /** Hosting node id, or null for a cluster-wide name. */
  node: string | null;
}

const SAFE = /^[A-Za-z0-9-]$/;
const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });
export const MAX_ADDRESS_CHARS = 1024;

export function escapeToken(token: string): string {
  if (token.length === 0) throw invalid(token, "empty address segment");
  let out = "";
  for (const ch of token) {
    if (SAFE.test(ch)) {
      out += ch;
      continue;
    }
    for (const byte of utf8.encode(ch)) out += "_" + byte.toString(16).padStart(2, "0");
  }
  return out;
}

export function unescapeToken(token: string): string {
  if (!token.includes("_")) return token;
  const bytes: number[] = [];
  for (let i = 0; i < token.length; ) {
    if (token[i] === "_") {
      const hex = token.slice(i + 1, i + 3);
      if (!/^[0-9a-f]{2}$/.test(hex)) throw invalid(token, "bad escape in subject token");
      bytes.push(parseInt(hex, 16));
      i += 3;
    } else {
      bytes.push(token.charCodeAt(i));
      i += 1;
    }
  }
  return utf8Decoder.decode(new Uint8Array(bytes));
}

export function parseAddress(address: string): Address {
  if (typeof address !== "string" || address.length === 0 || address.length > MAX_ADDRESS_CHARS) {
    throw invalid(String(address), `address must be 1-${MAX_ADDRESS_CHARS} characters`);
  }
  const at = address.lastIndexOf("@");
  const pathPart = at >= 0 ? address.slice(0, at) : address;
  const node = at >= 0 ? address.slice(at + 1) : null;
  if (node !== null && node.length === 0) throw invalid(address, "empty node after '@'");
  const path = pathPart.split("/");
  if (path.some((s) => s.length === 0)) throw invalid(address, "empty path segment");
  return { path, node };
}

export function formatAddress(a: Address): string {
  return a.path.join("/") + (a.node === null ? "" : "@" + a.node);
}

export function subjectPrefix(cluster: string): string {
  return `skein.${escapeToken(cluster)}`;
}

/** Mailbox subject of an actor. */
export function addressToSubject(cluster: string, address: string): string {
  const a = parseAddress(address);
  const node = a.node === null ? "_" : escapeToken(a.node);
  return `${subjectPrefix(cluster)}.a.${node}.${a.path.map(escapeToken).join(".")}`;
}

/** Wildcard subject covering every actor hosted by `node`. */
export function nodeSubjectWildcard(cluster: string, node: string): string {
  return `${subjectPrefix(cluster)}.a.${escapeToken(node)}.>`;
}

export function subjectToAddress(cluster: string, subject: string): string {
  const prefix = `${subjectPrefix(cluster)}.a.`;
  if (!subject.startsWith(prefix)) throw invalid(subject, "subject is not an actor mailbox of this cluster");
  const tokens = subject.slice(prefix.length).split(".");
  if (tokens.length < 2) throw invalid(subject, "subject has no actor path");
  const node = tokens[0] === "_" ? null : unescapeToken(tokens[0]);
  return formatAddress({ node, path: tokens.slice(1).map(unescapeToken) });
}

/** Subject on which a node's supervisor publishes lifecycle events. */
export function eventSubject(cluster: string, node: string | "*"): string {
  return `${subjectPrefix(cluster)}.events.${node === "*" ? "*" : escapeToken(node)}`;
}

/** Address of the control agent of a node (spawn, stop, list, stats, faults). */
export function nodeAgentAddress(node: string): string {
  return `$node@${node}`;
}

function invalid(value: string, why: string): SkeinError {
  return new SkeinError(ErrorCode.INVALID_REQUEST, `invalid address "${value}": ${why}`, { address: value });
}
