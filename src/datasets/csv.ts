/**
 * Uploaded CSV datasets: a header row, one label column, every other column a
 * numeric feature. Parsing is csv-parse's: quoted fields ("a,b", "say ""hi""")
 * and CRLF or CR line ends are accepted; blank lines are skipped. Line
 * numbers in errors are the physical line (1 = the header) where the
 * offending record starts. `parseCsvStream` reads a stream chunk by chunk
 * (the API's uploads, so a large one never holds the event loop);
 * `parseCsvDataset` parses text at once (the CLI). Both build the dataset
 * with the same code.
 */
import { parse as parseStream, CsvError, type Options as CsvParseOptions } from 'csv-parse';
import { parse as parseSync } from 'csv-parse/sync';
import type { Readable } from 'node:stream';
import { DatasetError } from './errors.js';
import type { Dataset } from './types.js';

export interface CsvOptions {
  id: string;
  name: string;
  /** Label column by header name or 0-based index; default: the last column. */
  label?: string | number;
  maxRows?: number;
  maxFeatures?: number;
  /** Most distinct labels. */
  maxClasses?: number;
}

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const INTEGER = /^[+-]?\d+$/;

const PARSE_OPTIONS: CsvParseOptions = {
  bom: true, info: true, relax_column_count: true, relax_quotes: true, skip_empty_lines: true,
};

/** Bytes handed to the parser at once; the event loop is free between two slices. */
const SLICE_BYTES = 16 * 1024;

interface Parsed { record: string[]; info: { lines: number } }

function invalid(message: string, details?: Record<string, unknown>): DatasetError {
  return new DatasetError('CSV_INVALID', message, details);
}

/** The line a record starts on: csv-parse counts lines up to its end, so take off the line breaks inside its (quoted) fields. */
function startLine({ record, info }: Parsed): number {
  let breaks = 0;
  for (const field of record) if (field.includes('\n') || field.includes('\r')) breaks += field.match(/\r\n|\r|\n/g)!.length;
  return info.lines - breaks;
}

/** csv-parse's own errors (an unclosed quote, …) as CSV_INVALID naming the line after the last good record. */
function fromParser(err: unknown, lastLine: number): unknown {
  if (!(err instanceof CsvError)) return err;
  const line = lastLine + 1;
  const what = err.code === 'CSV_QUOTE_NOT_CLOSED' ? 'a quoted field is never closed' : err.message.replace(/ at line \d+.*$/, '').toLowerCase();
  return invalid(`line ${line}: ${what}`, { line });
}

/** Builds a dataset from records as they come: header first, then rows. */
class DatasetBuilder {
  private columns: string[] | null = null;
  private labelColumn = 0;
  private featureColumns: number[] = [];
  private features = 0;
  private x = new Float32Array(0);
  /** Each row's label as an index into `distinct` (sorted into classes at the end). */
  private labelIds = new Int32Array(0);
  private rows = 0;
  private readonly distinct = new Map<string, number>();
  /** End line of the last record (for errors of the parser itself). */
  lastLine = 0;

  constructor(private readonly options: CsvOptions) {}

  add(parsed: Parsed): void {
    const { record } = parsed;
    this.lastLine = parsed.info.lines;
    if (!this.columns) return this.header(record);
    const line = startLine(parsed);
    const { options, columns } = this;
    if (options.maxRows !== undefined && this.rows >= options.maxRows) {
      throw new DatasetError('CSV_TOO_LARGE', `the CSV has more than ${options.maxRows} data rows; the limit is ${options.maxRows}`, {
        line, limit: options.maxRows,
      });
    }
    if (record.length !== columns.length) {
      throw invalid(`line ${line}: expected ${columns.length} fields like the header, found ${record.length}`, { line });
    }
    const f = this.features;
    const row = this.rows;
    if (row >= this.labelIds.length) {
      const capacity = Math.max(1024, this.labelIds.length * 2);
      const x = new Float32Array(capacity * f);
      x.set(this.x);
      this.x = x;
      const ids = new Int32Array(capacity);
      ids.set(this.labelIds);
      this.labelIds = ids;
    }
    for (let j = 0; j < f; j++) {
      const col = this.featureColumns[j]!;
      const value = record[col]!.trim();
      if (!NUMBER.test(value)) {
        const shown = value === '' ? 'an empty value' : `"${value.slice(0, 40)}"`;
        throw invalid(`line ${line}, column "${columns[col]}": ${shown} is not a number`, { line, column: columns[col] });
      }
      // Stored as float32, so e.g. 1e39 would silently become Infinity.
      const number = Math.fround(Number(value));
      if (!Number.isFinite(number)) {
        throw invalid(`line ${line}, column "${columns[col]}": ${value} is outside the float32 range`, { line, column: columns[col] });
      }
      this.x[row * f + j] = number;
    }
    const label = record[this.labelColumn]!.trim();
    if (label === '') throw invalid(`line ${line}, column "${columns[this.labelColumn]}": the label is empty`, { line, column: columns[this.labelColumn] });
    let id = this.distinct.get(label);
    if (id === undefined) this.distinct.set(label, (id = this.distinct.size));
    this.labelIds[row] = id;
    this.rows++;
  }

  private header(record: string[]): void {
    const columns = record.map((f) => f.trim());
    if (columns.length < 2) throw invalid('line 1: the header needs at least two columns (features and a label)', { line: 1 });
    this.labelColumn = resolveLabelColumn(columns, this.options.label);
    this.features = columns.length - 1;
    const { maxFeatures } = this.options;
    if (maxFeatures !== undefined && this.features > maxFeatures) {
      throw new DatasetError('CSV_TOO_LARGE', `the CSV has ${this.features} feature columns; the limit is ${maxFeatures}`, {
        features: this.features, limit: maxFeatures,
      });
    }
    this.featureColumns = columns.map((_, j) => j).filter((j) => j !== this.labelColumn);
    this.columns = columns;
  }

  finish(): Dataset {
    const { columns, options, labelColumn, features } = this;
    if (!columns) throw invalid('the CSV is empty; a header row is required');
    const n = this.rows;
    if (n < 2) throw invalid(`the CSV has ${n} data row${n === 1 ? '' : 's'}; at least 2 are required`);
    const { classNames, classOf } = encodeLabels([...this.distinct.keys()]);
    const y = new Int32Array(n);
    for (let i = 0; i < n; i++) y[i] = classOf[this.labelIds[i]!]!;
    if (options.maxClasses !== undefined && classNames.length > options.maxClasses) {
      throw new DatasetError('CSV_TOO_LARGE', `column "${columns[labelColumn]}" has ${classNames.length} distinct labels; the limit is ${options.maxClasses} classes (MAX_CLASSES)`, {
        column: columns[labelColumn], classes: classNames.length, limit: options.maxClasses, setting: 'MAX_CLASSES',
      });
    }
    if (classNames.length < 2) {
      throw invalid(`column "${columns[labelColumn]}" has a single class ("${classNames[0]}"); at least 2 are required`);
    }
    return {
      id: options.id,
      name: options.name,
      inputShape: [features],
      features,
      classes: classNames.length,
      classNames,
      valueRange: null,
      train: { x: this.x.slice(0, n * features), y, n },
      test: null,
    };
  }
}

/** Parse CSV text at once. */
export function parseCsvDataset(text: string, options: CsvOptions): Dataset {
  const builder = new DatasetBuilder(options);
  try {
    // Each record goes straight to the builder; none is kept.
    parseSync(text, { ...PARSE_OPTIONS, info: false, on_record: (record: string[], info: { lines: number }) => { builder.add({ record, info }); return null; } });
  } catch (err) {
    throw fromParser(err, builder.lastLine);
  }
  return builder.finish();
}

/**
 * Parse CSV from a stream of bytes (UTF-8), record by record as the chunks
 * arrive, in slices of SLICE_BYTES with the event loop free in between. On an
 * error the rest of the stream is drained, not destroyed (an HTTP request
 * still gets its answer).
 */
export async function parseCsvStream(source: Readable, options: CsvOptions): Promise<Dataset> {
  const builder = new DatasetBuilder(options);
  const parser = parseStream(PARSE_OPTIONS);
  const drained = () => new Promise<void>((resolve) => {
    const done = () => { parser.off('drain', done); parser.off('close', done); resolve(); };
    parser.on('drain', done);
    parser.on('close', done);
  });
  const feeding = (async () => {
    try {
      for await (const chunk of source) {
        for (let i = 0; i < (chunk as Buffer).length && !parser.destroyed; i += SLICE_BYTES) {
          parser.write((chunk as Buffer).subarray(i, i + SLICE_BYTES));
          await new Promise((resolve) => setImmediate(resolve));
          if (parser.writableNeedDrain && !parser.destroyed) await drained();
        }
        if (parser.destroyed) break;
      }
      if (!parser.destroyed) parser.end();
    } catch (err) {
      parser.destroy(err as Error);
    }
    source.resume();
  })();
  try {
    for await (const record of parser) builder.add(record as Parsed);
  } catch (err) {
    parser.destroy();
    throw fromParser(err, builder.lastLine);
  } finally {
    await feeding;
  }
  return builder.finish();
}

function resolveLabelColumn(columns: string[], label: string | number | undefined): number {
  if (label === undefined) return columns.length - 1;
  if (typeof label === 'number') {
    if (!Number.isInteger(label) || label < 0 || label >= columns.length) {
      throw invalid(`label column index ${label} is out of range (the header has ${columns.length} columns, 0..${columns.length - 1})`, {
        label, columns,
      });
    }
    return label;
  }
  const index = columns.indexOf(label);
  if (index < 0) throw invalid(`label column "${label}" is not in the header (columns: ${columns.join(', ')})`, { label, columns });
  return index;
}

/**
 * Distinct labels → sorted class names and, per distinct label, its class;
 * numeric order when every label is an integer. Integer labels are keyed by
 * value, so "01" and "1" are one class named "1".
 */
function encodeLabels(labels: string[]): { classNames: string[]; classOf: Int32Array } {
  const numeric = labels.every((l) => INTEGER.test(l));
  const keys = numeric ? labels.map((l) => String(Number(l))) : labels;
  const classNames = [...new Set(keys)].sort(numeric ? (a, b) => Number(a) - Number(b) : undefined);
  const index = new Map(classNames.map((name, i) => [name, i]));
  return { classNames, classOf: Int32Array.from(keys, (k) => index.get(k)!) };
}


/**
 * Rows of numbers only (no label column), as float32 row-major, for
 * prediction. A first row that is not all numbers is taken as the header.
 */
export function parseCsvRows(text: string): { columns: string[] | null; x: Float32Array; n: number; features: number } {
  let columns: string[] | null = null;
  const values: number[] = [];
  let features = -1;
  let lastLine = 0;
  const add = (parsed: Parsed) => {
    const line = startLine(parsed);
    lastLine = parsed.info.lines;
    const cells = parsed.record.map((f) => f.trim());
    if (features < 0) {
      features = cells.length;
      if (!cells.every((c) => NUMBER.test(c))) {
        columns = cells;
        return;
      }
    }
    if (cells.length !== features) throw invalid(`line ${line}: expected ${features} fields like line 1, found ${cells.length}`, { line });
    cells.forEach((c, j) => {
      const number = NUMBER.test(c) ? Math.fround(Number(c)) : NaN;
      if (!Number.isFinite(number)) {
        throw invalid(`line ${line}, column ${columns?.[j] ? `"${columns[j]}"` : j + 1}: ${c === '' ? 'an empty value' : `"${c.slice(0, 40)}"`} is not a float32 number`, { line });
      }
      values.push(number);
    });
  };
  try {
    parseSync(text, { ...PARSE_OPTIONS, info: false, on_record: (record: string[], info: { lines: number }) => { add({ record, info }); return null; } });
  } catch (err) {
    throw fromParser(err, lastLine);
  }
  if (values.length === 0) throw invalid('the CSV has no data rows');
  return { columns, x: Float32Array.from(values), n: values.length / features, features };
}
