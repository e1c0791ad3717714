import { describe, it, expect, onTestFinished } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { DatasetError } from '../../src/datasets/index.js';
import { parseIdx, readIdxFile } from '../../src/datasets/idx.js';

const WIDTH = { 0x08: 1, 0x09: 1, 0x0b: 2, 0x0c: 4, 0x0d: 4, 0x0e: 8 } as const;

/** Hand-build IDX bytes: magic, big-endian dimensions, big-endian values. */
function idx(dtype: keyof typeof WIDTH, shape: number[], values: number[]): Buffer {
  const width = WIDTH[dtype];
  const buf = Buffer.alloc(4 + 4 * shape.length + width * values.length);
  buf[2] = dtype;
  buf[3] = shape.length;
  shape.forEach((d, i) => buf.writeUInt32BE(d, 4 + 4 * i));
  const start = 4 + 4 * shape.length;
  values.forEach((v, i) => {
    const at = start + width * i;
    if (dtype === 0x08) buf.writeUInt8(v, at);
    else if (dtype === 0x09) buf.writeInt8(v, at);
    else if (dtype === 0x0b) buf.writeInt16BE(v, at);
    else if (dtype === 0x0c) buf.writeInt32BE(v, at);
    else if (dtype === 0x0d) buf.writeFloatBE(v, at);
    else buf.writeDoubleBE(v, at);
  });
  return buf;
}

function idxError(bytes: Uint8Array): DatasetError {
  try {
    parseIdx(bytes);
  } catch (err) {
    expect(err).toBeInstanceOf(DatasetError);
    expect((err as DatasetError).code).toBe('IDX_INVALID');
    return err as DatasetError;
  }
  throw new Error('expected IDX_INVALID');
}

const PIXELS = Array.from({ length: 2 * 3 * 2 }, (_, i) => (i * 23) % 256);

describe('IDX reader', () => {
  it('reads unsigned bytes with their shape, raw and gzipped alike', () => {
    const raw = idx(0x08, [2, 3, 2], PIXELS);
    for (const bytes of [raw, gzipSync(raw)]) {
      const a = parseIdx(bytes);
      expect(a.dtype).toBe('uint8');
      expect(a.shape).toEqual([2, 3, 2]);
      expect(Array.from(a.data)).toEqual(PIXELS);
    }
  });

  it('reads dimensions above 255 big-endian', () => {
    const a = parseIdx(idx(0x08, [300], new Array(300).fill(7)));
    expect(a.shape).toEqual([300]);
    expect(a.data).toHaveLength(300);
  });

  it('reads the signed and wider dtypes big-endian', () => {
    const cases = [
      [0x09, 'int8', [-128, -1, 0, 127]],
      [0x0b, 'int16', [-32768, -2, 258, 32767]],
      [0x0c, 'int32', [-2147483648, -3, 66051, 2147483647]],
      [0x0d, 'float32', [-1.5, 0, 3.25, 1e30]],
      [0x0e, 'float64', [-1e-300, Math.PI, 0.1, 1e300]],
    ] as const;
    for (const [code, dtype, values] of cases) {
      const a = parseIdx(idx(code, [2, 2], [...values]));
      expect(a.dtype).toBe(dtype);
      expect(a.shape).toEqual([2, 2]);
      expect(Array.from(a.data)).toEqual(dtype === 'float32' ? values.map(Math.fround) : values);
    }
  });

  it('rejects an unknown dtype and a non-IDX magic', () => {
    const unknown = idx(0x08, [1], [1]);
    unknown[2] = 0x0a;
    expect(idxError(unknown).message).toMatch(/unsupported IDX dtype 0x0a/);
    expect(idxError(Buffer.from('PK\x03\x04 not idx')).message).toMatch(/not an IDX file/);
  });

  it('rejects truncated input at every stage with a clear message', () => {
    const full = idx(0x0c, [2, 3], [1, 2, 3, 4, 5, 6]);
    expect(idxError(full.subarray(0, 3)).message).toMatch(/truncated: 3 bytes/);
    expect(idxError(full.subarray(0, 9)).message).toMatch(/header of 2 dimensions needs 12/);
    expect(idxError(full.subarray(0, full.length - 1)).message).toMatch(/shape \[2, 3\] needs 24 data bytes, found 23/);
    expect(idxError(Buffer.concat([full, Buffer.alloc(2)])).message).toMatch(/2 unexpected bytes/);
    const gz = gzipSync(full);
    expect(idxError(gz.subarray(0, gz.length - 10)).message).toMatch(/gzip data is corrupt or truncated/);
  });

  it('rejects huge declared dimensions without allocating them', () => {
    expect(idxError(idx(0x0e, [0xffffffff, 0xffffffff], [])).message).toMatch(/truncated/);
  });

  it('readIdxFile reads gzipped and raw files and names the file in errors', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'normlab-idx-'));
    onTestFinished(() => rmSync(dir, { recursive: true }));
    const raw = idx(0x08, [2, 3, 2], PIXELS);
    writeFileSync(path.join(dir, 'a.gz'), gzipSync(raw));
    writeFileSync(path.join(dir, 'a'), raw);
    writeFileSync(path.join(dir, 'bad.gz'), gzipSync(raw).subarray(0, 20));
    for (const name of ['a.gz', 'a']) {
      const a = await readIdxFile(path.join(dir, name));
      expect(a.shape).toEqual([2, 3, 2]);
      expect(Array.from(a.data)).toEqual(PIXELS);
    }
    await expect(readIdxFile(path.join(dir, 'bad.gz'))).rejects.toMatchObject({
      code: 'IDX_INVALID',
      message: expect.stringContaining('bad.gz'),
    });
  });
});
