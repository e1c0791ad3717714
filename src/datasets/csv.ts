/**
 * Uploaded CSV datasets: a header row, one label column, every other column a
 * numeric feature. Quoted fields ("a,b", "say ""hi""") and CRLF line ends are
 * accepted; blank lines are skipped. Line numbers in errors are the physical
 * line (1 = the header) where the offending record starts.
 */
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

interface CsvRecord {
  line: number;
  fields: string[];
}

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const INTEGER = /^[+-]?\d+$/;

function invalid(message: string, details?: Record<string, unknown>): DatasetError {
  return new DatasetError('CSV_INVALID', message, details);
}

export function parseCsvDataset(text: string, options: CsvOptions): Dataset {
  const records = csvRecords(text);
  const header = records.next();
  if (header.done) throw invalid('the CSV is empty; a header row is required');
  const columns = header.value.fields.map((f) => f.trim());
  if (columns.length < 2) throw invalid('line 1: the header needs at least two columns (features and a label)', { line: 1 });

  const labelColumn = resolveLabelColumn(columns, options.label);
  const features = columns.length - 1;
  if (options.maxFeatures !== undefined && features > options.maxFeatures) {
    throw new DatasetError('CSV_TOO_LARGE', `the CSV has ${features} feature columns; the limit is ${options.maxFeatures}`, {
      features, limit: options.maxFeatures,
    });
  }
  const featureColumns = columns.map((_, j) => j).filter((j) => j !== labelColumn);

  let x = new Float32Array(features * 1024);
  const labels: string[] = [];
  for (const { line, fields } of records) {
    if (options.maxRows !== undefined && labels.length >= options.maxRows) {
      throw new DatasetError('CSV_TOO_LARGE', `the CSV has more than ${options.maxRows} data rows; the limit is ${options.maxRows}`, {
        line, limit: options.maxRows,
      });
    }
    if (fields.length !== columns.length) {
      throw invalid(`line ${line}: expected ${columns.length} fields like the header, found ${fields.length}`, { line });
    }
    const row = labels.length;
    if ((row + 1) * features > x.length) {
      const grown = new Float32Array(x.length * 2);
      grown.set(x);
      x = grown;
    }
    for (let j = 0; j < features; j++) {
      const col = featureColumns[j]!;
      const value = fields[col]!.trim();
      if (!NUMBER.test(value)) {
        const shown = value === '' ? 'an empty value' : `"${value.slice(0, 40)}"`;
        throw invalid(`line ${line}, column "${columns[col]}": ${shown} is not a number`, { line, column: columns[col] });
      }
      // Stored as float32, so e.g. 1e39 would silently become Infinity.
      const number = Math.fround(Number(value));
      if (!Number.isFinite(number)) {
        throw invalid(`line ${line}, column "${columns[col]}": ${value} is outside the float32 range`, { line, column: columns[col] });
      }
      x[row * features + j] = number;
    }
    const label = fields[labelColumn]!.trim();
    if (label === '') throw invalid(`line ${line}, column "${columns[labelColumn]}": the label is empty`, { line, column: columns[labelColumn] });
    labels.push(label);
  }

  const n = labels.length;
  if (n < 2) throw invalid(`the CSV has ${n} data row${n === 1 ? '' : 's'}; at least 2 are required`);
  const { classNames, y } = encodeLabels(labels);
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
    train: { x: x.slice(0, n * features), y, n },
    test: null,
  };
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

/** Distinct labels → class indices in sorted order; numeric order when every label is an integer. */
function encodeLabels(labels: string[]): { classNames: string[]; y: Int32Array } {
  const numeric = labels.every((l) => INTEGER.test(l));
  // Integer labels are keyed by value, so "01" and "1" are one class named "1".
  const keys = numeric ? labels.map((l) => String(Number(l))) : labels;
  const classNames = [...new Set(keys)].sort(numeric ? (a, b) => Number(a) - Number(b) : undefined);
  const index = new Map(classNames.map((name, i) => [name, i]));
  return { classNames, y: Int32Array.from(keys, (k) => index.get(k)!) };
}

/** Split CSV text into records, yielding each with the line it starts on. */
function* csvRecords(text: string): Generator<CsvRecord> {
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0; // a UTF-8 byte order mark is not part of the first column name
  let line = 1;
  while (i < text.length) {
    const start = line;
    const fields: string[] = [];
    for (;;) {
      let field = '';
      if (text[i] === '"') {
        // Quoted: runs to the closing quote; "" is a literal quote; commas and newlines are data.
        i++;
        for (;;) {
          const q = text.indexOf('"', i);
          if (q < 0) throw invalid(`line ${line}: a quoted field is never closed`, { line });
          field += text.slice(i, q);
          line += countNewlines(text, i, q);
          if (text[q + 1] === '"') {
            field += '"';
            i = q + 2;
          } else {
            i = q + 1;
            break;
          }
        }
      }
      let end = i;
      while (end < text.length && text[end] !== ',' && text[end] !== '\n' && text[end] !== '\r') end++;
      field += text.slice(i, end);
      fields.push(field);
      i = end;
      if (text[i] !== ',') break;
      i++;
    }
    if (text[i] === '\r') i++;
    if (text[i] === '\n') i++;
    line++;
    if (fields.length > 1 || fields[0]!.trim() !== '') yield { line: start, fields };
  }
}

function countNewlines(text: string, from: number, to: number): number {
  let count = 0;
  for (let k = text.indexOf('\n', from); k >= 0 && k < to; k = text.indexOf('\n', k + 1)) count++;
  return count;
}
