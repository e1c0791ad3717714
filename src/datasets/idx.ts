/**
 * IDX files (the MNIST family): two zero bytes, a dtype byte, a dimension
 * count byte, one big-endian uint32 per dimension, then the big-endian data.
 * Gzipped files are recognized by their 1f 8b magic and inflated first.
 */
import { readFile } from 'node:fs/promises';
import { gunzip, gunzipSync } from 'node:zlib';
import { promisify } from 'node:util';
import { DatasetError } from './errors.js';

export type IdxDType = 'uint8' | 'int8' | 'int16' | 'int32' | 'float32' | 'float64';
export type IdxData = Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;

export interface IdxArray {
  dtype: IdxDType;
  shape: number[];
  /** Row-major values; for uint8 a view into the input bytes (no copy). */
  data: IdxData;
}

const DTYPES: Record<number, { dtype: IdxDType; size: number }> = {
  0x08: { dtype: 'uint8', size: 1 },
  0x09: { dtype: 'int8', size: 1 },
  0x0b: { dtype: 'int16', size: 2 },
  0x0c: { dtype: 'int32', size: 4 },
  0x0d: { dtype: 'float32', size: 4 },
  0x0e: { dtype: 'float64', size: 8 },
};

const gunzipAsync = promisify(gunzip);

function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

function invalid(source: string, problem: string): DatasetError {
  return new DatasetError('IDX_INVALID', `${source}: ${problem}`, { source });
}

function gzipError(source: string, err: unknown): DatasetError {
  return invalid(source, `gzip data is corrupt or truncated (${(err as Error).message})`);
}

/** Parse IDX bytes, raw or gzipped. `source` names the data in error messages. */
export function parseIdx(bytes: Uint8Array, source = 'IDX data'): IdxArray {
  if (!isGzip(bytes)) return parseRawIdx(bytes, source);
  let raw: Uint8Array;
  try {
    raw = gunzipSync(bytes);
  } catch (err) {
    throw gzipError(source, err);
  }
  return parseRawIdx(raw, source);
}

/** Read an IDX file, inflating it on the libuv thread pool when gzipped (so several files inflate in parallel). */
export async function readIdxFile(path: string): Promise<IdxArray> {
  const bytes = await readFile(path);
  if (!isGzip(bytes)) return parseRawIdx(bytes, path);
  let raw: Uint8Array;
  try {
    raw = await gunzipAsync(bytes);
  } catch (err) {
    throw gzipError(path, err);
  }
  return parseRawIdx(raw, path);
}

function parseRawIdx(bytes: Uint8Array, source: string): IdxArray {
  if (bytes.length < 4) throw invalid(source, `truncated: ${bytes.length} bytes, the header alone needs 4`);
  if (bytes[0] !== 0 || bytes[1] !== 0) throw invalid(source, 'not an IDX file (the magic number must start with two zero bytes)');
  const type = DTYPES[bytes[2]!];
  if (!type) {
    throw invalid(source, `unsupported IDX dtype 0x${bytes[2]!.toString(16).padStart(2, '0')} (supported: 08, 09, 0b, 0c, 0d, 0e)`);
  }
  const ndim = bytes[3]!;
  if (ndim === 0) throw invalid(source, 'has zero dimensions');
  const dataStart = 4 + 4 * ndim;
  if (bytes.length < dataStart) throw invalid(source, `truncated: ${bytes.length} bytes, the header of ${ndim} dimensions needs ${dataStart}`);

  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shape: number[] = [];
  let count = 1;
  for (let d = 0; d < ndim; d++) {
    const size = view.getUint32(4 + 4 * d, false);
    shape.push(size);
    count *= size;
  }
  const expected = count * type.size;
  const actual = bytes.length - dataStart;
  if (actual < expected) throw invalid(source, `truncated: shape [${shape.join(', ')}] needs ${expected} data bytes, found ${actual}`);
  if (actual > expected) throw invalid(source, `${actual - expected} unexpected bytes after the data of shape [${shape.join(', ')}]`);

  return { dtype: type.dtype, shape, data: readData(view, type.dtype, dataStart, count) };
}

function readData(view: DataView, dtype: IdxDType, start: number, count: number): IdxData {
  const offset = view.byteOffset + start;
  switch (dtype) {
    case 'uint8':
      return new Uint8Array(view.buffer, offset, count);
    case 'int8':
      return new Int8Array(view.buffer, offset, count);
    // Wider types are big-endian in the file, so they are read value by value.
    case 'int16': {
      const out = new Int16Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt16(start + 2 * i, false);
      return out;
    }
    case 'int32': {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt32(start + 4 * i, false);
      return out;
    }
    case 'float32': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(start + 4 * i, false);
      return out;
    }
    case 'float64': {
      const out = new Float64Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(start + 8 * i, false);
      return out;
    }
  }
}
