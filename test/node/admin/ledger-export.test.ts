// Proves the export's formats (CSV and JSONL) and how it reads the range.
// CSV has the header of every row field, quotes a field holding a comma, a quote, CR or LF per RFC
// 4180 (quotes doubled) and leaves nulls empty; JSONL is a row per line that parses back to the
// row; the range is read in slices of at most the bound, each counted before it is read, and an
// export writes each slice before it reads the next.
import { describe, expect, it } from 'vitest';
import type { LedgerRow } from '../../../src/ledger/ledger-row.js';
import { csvHeader, csvLine, exportColumns, jsonLine, ledgerSlices, writeExport } from '../../../src/node/admin/ledger-export.js';
import { ledgerRow, MemoryUsageReader } from '../../support/memory-usage-reader.js';

/** The fields of one CSV record, read back by the rules of RFC 4180 (a small reader, for this test only). */
function parseCsvRecords(text: string): string[][] {
  const records: string[][] = [];
  let record: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      record.push(field);
      field = '';
    } else if (c === '\r' && text[i + 1] === '\n') {
      record.push(field);
      records.push(record);
      record = [];
      field = '';
      i++;
    } else field += c;
  }
  expect(field).toBe('');
  return records;
}

describe('CSV', () => {
  it('has a header of every row field, in the order of exportColumns', () => {
    const row = ledgerRow({ requestId: 'r1' });
    expect(csvHeader()).toBe(`${exportColumns.join(',')}\r\n`);
    expect([...exportColumns].sort()).toEqual(Object.keys(row).sort());
  });

  it('quotes a field that holds a comma, a quote, CR or LF, doubles its quotes, and leaves nulls empty', () => {
    const row = ledgerRow({
      requestId: 'r,1',
      user: 'say "hi"',
      apiKeyId: null,
      account: null,
      status: 'line\nbreak',
      model: 'cr\rhere',
      costMicros: null,
      estimated: true,
    });
    const line = csvLine(row);
    expect(line.endsWith('\r\n')).toBe(true);
    expect(line.startsWith('"r,1",local,acme,"say ""hi""",,,')).toBe(true);
    const [header, fields] = parseCsvRecords(csvHeader() + line);
    const byName = Object.fromEntries((header as string[]).map((name, i) => [name, (fields as string[])[i]]));
    expect(byName).toMatchObject({
      requestId: 'r,1',
      user: 'say "hi"',
      apiKeyId: '',
      account: '',
      status: 'line\nbreak',
      model: 'cr\rhere',
      costMicros: '',
      estimated: 'true',
      inputTokens: '10',
    });
  });
});

describe('JSONL', () => {
  it('is one line per row that parses back to the row', () => {
    const row = ledgerRow({ requestId: 'r1', user: 'line\nbreak', costMicros: null });
    const line = jsonLine(row);
    expect(line.indexOf('\n')).toBe(line.length - 1);
    expect(JSON.parse(line)).toEqual(row);
  });
});

const rowsAt = (times: readonly number[]): LedgerRow[] => times.map((chargedAtMs, i) => ledgerRow({ requestId: `r${i}`, chargedAtMs }));

describe('slices', () => {
  it('hold at most the bound, are counted before they are read, and cover the range once', () => {
    const reader = new MemoryUsageReader(rowsAt(Array.from({ length: 50 }, (_, i) => 1_000 + i * 10)));
    const slices = [...ledgerSlices(reader, { side: 'tenant', sinceMs: 0, untilMs: 10_000 }, 7)];
    expect(slices.every((slice) => slice.length <= 7)).toBe(true);
    expect(slices.flat().map((row) => row.requestId)).toEqual(Array.from({ length: 50 }, (_, i) => `r${i}`));
    expect(reader.calls.eachRow).toBe(slices.length);
    expect(reader.calls.queryUsage).toBeGreaterThanOrEqual(slices.length);
  });

  it('read a millisecond that holds more rows than the bound whole, since it cannot be split', () => {
    const reader = new MemoryUsageReader(rowsAt([5, 5, 5, 5, 5, 6]));
    const slices = [...ledgerSlices(reader, { side: 'tenant', sinceMs: 0, untilMs: 100 }, 2)];
    expect(slices.map((slice) => slice.length)).toEqual([5, 1]);
  });

  it('leave out rows outside the range and of the other side', () => {
    const reader = new MemoryUsageReader([...rowsAt([1, 50, 99, 100]), ledgerRow({ requestId: 'home', role: 'home', chargedAtMs: 60 })]);
    expect([...ledgerSlices(reader, { side: 'tenant', sinceMs: 50, untilMs: 100 }, 10)].flat().map((row) => row.requestId)).toEqual(['r1', 'r2']);
  });
});

describe('an export', () => {
  it('writes each slice, and waits for it to be taken, before it reads the next', async () => {
    const reader = new MemoryUsageReader(rowsAt(Array.from({ length: 20 }, (_, i) => i * 100)));
    const seen: { readonly eachRow: number; readonly chunk: string }[] = [];
    let release: () => void = () => {};
    const written = writeExport(
      reader,
      { side: 'tenant', sinceMs: 0, untilMs: 2_000 },
      'jsonl',
      async (chunk) => {
        seen.push({ eachRow: reader.calls.eachRow, chunk });
        await new Promise<void>((resolve) => (release = resolve));
      },
      5,
    );
    for (let slice = 1; slice <= 4; slice++) {
      await new Promise((resolve) => setImmediate(resolve));
      // The writer holds slice `slice`; nothing more was read while it waits.
      expect([slice, seen.length, reader.calls.eachRow]).toEqual([slice, slice, slice]);
      release();
    }
    expect(await written).toBe(20);
    const lines = seen
      .map((entry) => entry.chunk)
      .join('')
      .trimEnd()
      .split('\n');
    expect(lines.map((line) => (JSON.parse(line) as LedgerRow).requestId)).toEqual(Array.from({ length: 20 }, (_, i) => `r${i}`));
  });

  it('starts a CSV with its header, even when no row matches', async () => {
    const chunks: string[] = [];
    expect(
      await writeExport(new MemoryUsageReader(), { side: 'tenant', sinceMs: 0, untilMs: 10 }, 'csv', (chunk) => Promise.resolve(void chunks.push(chunk))),
    ).toBe(0);
    expect(chunks).toEqual([csvHeader()]);
  });
});
