/**
 * The gateway's input estimate; what a request is charged per metric, from it and from what its
 * calls used, is src/admission/request-amounts.ts.
 *
 * Counting tokens exactly would take a tokenizer (or a count_tokens call) per
 * request; instead the estimate is the byte length of `request_json` plus a fixed overhead, an
 * upper bound for what requests carry in practice: every text token is at least one byte of its
 * UTF-8 text, and JSON quoting and escaping only add bytes; the overhead covers what the API adds
 * around the text (turn markers, the tool-use preamble of about 300 tokens). It errs high, about
 * fourfold for English text, which costs only reserved room until settlement refunds it. The
 * known exceptions are media the JSON only refers to (an image or document by URL or file id, up
 * to some 1,600 tokens an image and more for a document): such a request is charged its true
 * usage at settlement, but a strict or escrow limit was checked against the smaller estimate.
 */
export const inputOverheadTokens = 1_024;

export function inputTokensUpperBound(requestJsonBytes: number): number {
  return requestJsonBytes + inputOverheadTokens;
}
