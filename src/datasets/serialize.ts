/**
 * Binary form of a dataset for storing uploads in Redis:
 *
 *   "NLDS" | uint32 LE header length | JSON header | train x | train y | test x | test y
 *
 * The arrays are raw little-endian float32 / int32 bytes (Node's typed-array
 * layout on every platform it ships for in practice). The header carries a
 * CRC-32 of the array bytes, so a damaged buffer is rejected, not decoded
 * into silently wrong data.
 */
import { crc32 } from 'node:zlib';
import { DatasetError } from './errors.js';
import type { Dataset, Split } from './types.js';

const MAGIC = 'NLDS';
const VERSION = 1;

interface Header {
  version: number;
  id: string;
  name: string;
  inputShape: number[];
  classNames: string[];
  valueRange: [number, number] | null;
  trainRows: number;
  testRows: number | null;
  crc32: number;
}

function bytesOf(a: Float32Array | Int32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

export function encodeDataset(ds: Dataset): Buffer {
  const splits = ds.test ? [ds.train, ds.test] : [ds.train];
  const payload = Buffer.concat(splits.flatMap((s) => [
    bytesOf(s.x.subarray(0, s.n * ds.features)),
    bytesOf(s.y.subarray(0, s.n)),
  ]));
  const header: Header = {
    version: VERSION,
    id: ds.id,
    name: ds.name,
    inputShape: ds.inputShape,
    classNames: ds.classNames,
    valueRange: ds.valueRange,
    trainRows: ds.train.n,
    testRows: ds.test ? ds.test.n : null,
    crc32: crc32(payload),
  };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.write(MAGIC, 0, 'latin1');
  prefix.writeUInt32LE(json.length, 4);
  return Buffer.concat([prefix, json, payload]);
}

function corrupt(problem: string): DatasetError {
  return new DatasetError('DATASET_CORRUPT', `stored dataset is corrupt: ${problem}`);
}

export function decodeDataset(buf: Buffer): Dataset {
  if (buf.length < 8 || buf.toString('latin1', 0, 4) !== MAGIC) throw corrupt('missing the NLDS magic');
  const headerEnd = 8 + buf.readUInt32LE(4);
  if (headerEnd > buf.length) throw corrupt('truncated header');
  const header = parseHeader(buf.toString('utf8', 8, headerEnd));

  const features = header.inputShape.reduce((a, b) => a * b, 1);
  const classes = header.classNames.length;
  const rowBytes = 4 * features + 4;
  const expected = headerEnd + rowBytes * (header.trainRows + (header.testRows ?? 0));
  if (buf.length !== expected) throw corrupt(`expected ${expected} bytes, found ${buf.length}`);
  if (crc32(buf.subarray(headerEnd)) !== header.crc32) throw corrupt('checksum mismatch');

  let offset = headerEnd;
  const readSplit = (n: number): Split => {
    // slice() copies into a fresh, aligned ArrayBuffer (a Redis reply may start at any byte offset).
    const x = new Float32Array(buf.buffer.slice(buf.byteOffset + offset, buf.byteOffset + offset + 4 * n * features));
    offset += 4 * n * features;
    const y = new Int32Array(buf.buffer.slice(buf.byteOffset + offset, buf.byteOffset + offset + 4 * n));
    offset += 4 * n;
    if (y.some((c) => c < 0 || c >= classes)) throw corrupt(`a label is outside 0..${classes - 1}`);
    return { x, y, n };
  };
  const train = readSplit(header.trainRows);
  const test = header.testRows === null ? null : readSplit(header.testRows);
  return {
    id: header.id,
    name: header.name,
    inputShape: header.inputShape,
    features,
    classes,
    classNames: header.classNames,
    valueRange: header.valueRange,
    train,
    test,
  };
}

const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

function parseHeader(text: string): Header {
  let h: Partial<Header>;
  try {
    h = JSON.parse(text) as Partial<Header>;
  } catch {
    throw corrupt('header is not JSON');
  }
  if (h?.version !== VERSION) throw corrupt(`unsupported version ${String(h?.version)}`);
  const valid =
    typeof h.id === 'string' &&
    typeof h.name === 'string' &&
    Array.isArray(h.inputShape) && h.inputShape.length > 0 && h.inputShape.every((d) => isCount(d) && d > 0) &&
    Array.isArray(h.classNames) && h.classNames.every((c) => typeof c === 'string') &&
    (h.valueRange === null || (Array.isArray(h.valueRange) && h.valueRange.length === 2 && h.valueRange.every(Number.isFinite))) &&
    isCount(h.trainRows) &&
    (h.testRows === null || isCount(h.testRows)) &&
    isCount(h.crc32);
  if (!valid) throw corrupt('header fields are missing or malformed');
  return h as Header;
}
