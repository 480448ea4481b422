/**
 * The models the front door lists (GET /v1/models) and, when the node names them, the only ones
 * it takes.
 *
 * Where the list comes from: the node config's `http.models`. The policy has no models per tenant
 * or per account, so every tenant of a node sees the same list. With `http.models` set the list is
 * exact: a Messages or count_tokens request naming another model is refused 404 not_found_error
 * before anything is counted. Without it the node lists `defaultModels` below and takes any model
 * name, leaving the judgement to the upstream (an unknown name comes back as the upstream's 404
 * not_found_error; such a request reached no model, so it is charged nothing).
 */
export interface CatalogueModel {
  readonly id: string;
  readonly displayName: string;
  /** RFC 3339; the date in the id when it has one. */
  readonly createdAt: string;
}

export interface ModelCatalogue {
  readonly models: readonly CatalogueModel[];
  /** Whether only the listed models are taken. */
  readonly exact: boolean;
}

/** Models listed when the node names none: the Claude models current when this was written. */
export const defaultModelIds: readonly string[] = Object.freeze([
  'claude-opus-4-1-20250805',
  'claude-opus-4-20250514',
  'claude-sonnet-4-5-20250929',
  'claude-sonnet-4-20250514',
  'claude-haiku-4-5-20251001',
  'claude-3-5-haiku-20241022',
]);

export interface ModelEntry {
  readonly id: string;
  readonly displayName?: string | undefined;
}

export function modelCatalogueOf(configured: readonly ModelEntry[] | undefined): ModelCatalogue {
  const entries: readonly ModelEntry[] = configured ?? defaultModelIds.map((id) => ({ id }));
  return {
    models: entries.map((entry) => ({ id: entry.id, displayName: entry.displayName ?? entry.id, createdAt: createdAtOf(entry.id) })),
    exact: configured !== undefined,
  };
}

/** Whether a request may name `model`. */
export function acceptsModel(catalogue: ModelCatalogue, model: string): boolean {
  return !catalogue.exact || catalogue.models.some((entry) => entry.id === model);
}

/** `claude-sonnet-4-5-20250929` was released on 2025-09-29; an id without a date gets the epoch, meaning unknown. */
function createdAtOf(id: string): string {
  const match = /-(\d{4})(\d{2})(\d{2})$/.exec(id);
  return match === null ? '1970-01-01T00:00:00Z' : `${match[1]}-${match[2]}-${match[3]}T00:00:00Z`;
}

/** The Anthropic shape of one model. */
export function modelJson(model: CatalogueModel): Record<string, string> {
  return { type: 'model', id: model.id, display_name: model.displayName, created_at: model.createdAt };
}

/**
 * One page of the list, as the API pages it: `limit` (1 to 1000, default 20), `after_id` or
 * `before_id`, and `has_more`, `first_id`, `last_id`, which the SDKs' auto-pagination follows.
 */
export function modelPage(catalogue: ModelCatalogue, query: URLSearchParams): { ok: true; body: string } | { ok: false; message: string } {
  const limitText = query.get('limit');
  const limit = limitText === null ? 20 : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) return { ok: false, message: 'limit must be an integer from 1 to 1000' };
  const models = catalogue.models;
  const after = query.get('after_id');
  const before = query.get('before_id');
  let start = 0;
  let end = models.length;
  if (after !== null) start = models.findIndex((m) => m.id === after) + 1;
  if (before !== null) {
    end = Math.max(
      0,
      models.findIndex((m) => m.id === before),
    );
    start = Math.max(0, end - limit);
  }
  const page = models.slice(start, Math.min(end, start + limit));
  const hasMore = before !== null ? start > 0 : start + page.length < end;
  return { ok: true, body: JSON.stringify({ data: page.map(modelJson), has_more: hasMore, first_id: page[0]?.id ?? null, last_id: page.at(-1)?.id ?? null }) };
}
