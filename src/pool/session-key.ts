import { sessionKeyDepthMax, sessionKeyPrefixCharsMax } from '../core/limits.js';
import { StableHasher, stableHash } from './stable-hash.js';

/**
 * The session key of a Messages request, for sticky account selection: requests with the same
 * key go to the same account while it has capacity, so they find the prompt cache that account
 * already holds (a cache entry lives in one upstream account, and a read costs a tenth of a
 * write).
 *
 * In order of preference:
 *  1. `metadata.user_id`, when the client sends one: clients such as Claude Code put a session
 *     id in it, which is exactly the unit that shares a cache.
 *  2. The stable head of the cached prompt prefix, when the request uses prompt caching (some
 *     block carries `cache_control`). The prefix is read in the upstream's cache order: tools,
 *     then system, then messages.
 *  3. None: without caching there is nothing to be sticky for, and the pool's base strategy
 *     spreads the load better.
 *
 * Why the head of the prefix and not the whole of it. A conversation moves its breakpoint
 * forward every turn (the newest user message carries `cache_control`), so a hash up to the last
 * breakpoint would change every turn and send each turn to a different account: the opposite of
 * affinity. The head that stays put is: the tools and system up to their last breakpoint, and
 * when messages are cached too, the first message as well, which tells conversations apart.
 * Conversations that share a cached system prompt and no cached messages share a key, and that
 * is right: they share that cache entry. `cache_control` fields themselves are left out of the
 * hash, since clients move them between turns, and string content is read as the single text
 * block it stands for, since the upstream caches both alike.
 *
 * The body is JSON the client sent, so everything here is read defensively: a field of the
 * wrong type counts as absent, and a body nested deeper than `sessionKeyDepthMax` gets no key.
 * Hashing stops after `sessionKeyPrefixCharsMax` characters; prefixes equal that far share most
 * of their cache anyway.
 */
export type SessionKeySource = 'user' | 'prefix';

type Fields = Readonly<Record<string, unknown>>;

function isFields(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function hasCacheControl(block: unknown): boolean {
  return isFields(block) && block.cache_control !== undefined && block.cache_control !== null;
}

/** Content as blocks: a string stands for one text block. */
function blocksOf(content: unknown): readonly unknown[] {
  if (typeof content === 'string') return [{ type: 'text', text: content }];
  return Array.isArray(content) ? content : [];
}

/** Index of the last block carrying `cache_control`, or −1. */
function lastBreakpoint(blocks: readonly unknown[]): number {
  for (let i = blocks.length - 1; i >= 0; i--) if (hasCacheControl(blocks[i])) return i;
  return -1;
}

/** The session key of a request body, or undefined when it has none; see the file comment. */
export function sessionKeyOf(body: unknown): string | undefined {
  if (!isFields(body)) return undefined;
  const metadata = body.metadata;
  if (isFields(metadata) && typeof metadata.user_id === 'string' && metadata.user_id.length > 0) {
    return `user:${stableHash(metadata.user_id).toString(36)}`;
  }
  const prefix = prefixHash(body);
  return prefix === undefined ? undefined : `prefix:${prefix.toString(36)}`;
}

/** The source a key came from, for metrics. */
export function sessionKeySource(key: string): SessionKeySource | undefined {
  if (key.startsWith('user:')) return 'user';
  if (key.startsWith('prefix:')) return 'prefix';
  return undefined;
}

function prefixHash(body: Fields): number | undefined {
  const tools = Array.isArray(body.tools) ? (body.tools as readonly unknown[]) : [];
  const system = blocksOf(body.system);
  const messages = Array.isArray(body.messages) ? (body.messages as readonly unknown[]) : [];
  const messagesCached = messages.some((message) => isFields(message) && lastBreakpoint(blocksOf(message.content)) >= 0);
  const systemCut = lastBreakpoint(system);
  const toolsCut = lastBreakpoint(tools);
  if (!messagesCached && systemCut < 0 && toolsCut < 0) return undefined;

  // What enters the hash: with cached messages, all tools, all system blocks and the first
  // message; otherwise the sections up to their last breakpoint (tools whole when system is cached).
  const parts: unknown[] = [];
  if (messagesCached) {
    parts.push(tools, system, firstMessage(messages));
  } else if (systemCut >= 0) {
    parts.push(tools, system.slice(0, systemCut + 1));
  } else {
    parts.push(tools.slice(0, toolsCut + 1));
  }
  const hasher = new StableHasher();
  return feed(hasher, parts, 0) ? hasher.digest() : undefined;
}

/** The first message with its content as blocks, so string and block forms hash alike. */
function firstMessage(messages: readonly unknown[]): unknown {
  const first = messages[0];
  if (!isFields(first)) return first;
  return { ...first, content: blocksOf(first.content) };
}

/**
 * Feeds a canonical serialization of `value`: a type tag per value, lengths before strings and
 * collections (so boundaries count), object keys sorted, `cache_control` left out. Returns
 * false when the value nests too deep. Stops feeding, still returning true, once the hasher has
 * taken its character budget.
 */
function feed(hasher: StableHasher, value: unknown, depth: number): boolean {
  if (depth > sessionKeyDepthMax) return false;
  if (hasher.chars >= sessionKeyPrefixCharsMax) return true;
  if (typeof value === 'string') {
    hasher.update(`s${value.length}:`).update(value.slice(0, sessionKeyPrefixCharsMax));
    return true;
  }
  if (typeof value === 'number') {
    hasher.update(`n${String(value)};`);
    return true;
  }
  if (typeof value === 'boolean') {
    hasher.update(value ? 't' : 'f');
    return true;
  }
  if (Array.isArray(value)) {
    hasher.update(`a${value.length}[`);
    for (const item of value as readonly unknown[]) if (!feed(hasher, item, depth + 1)) return false;
    hasher.update(']');
    return true;
  }
  if (isFields(value)) {
    const keys = Object.keys(value)
      .filter((key) => key !== 'cache_control' && value[key] !== undefined)
      .sort();
    hasher.update(`o${keys.length}{`);
    for (const key of keys) {
      hasher.update(`k${key.length}:${key}`);
      if (!feed(hasher, value[key], depth + 1)) return false;
    }
    hasher.update('}');
    return true;
  }
  // null and anything JSON cannot hold.
  hasher.update('z');
  return true;
}
