/**
 * The safetensors layout: an 8-byte little-endian header length, a JSON
 * header mapping each tensor name to {dtype, shape, data_offsets}, then the
 * raw little-endian data. F32 (weights) and I32 (checkpoint indices) tensors.
 */

export interface NamedTensor<T extends Float32Array | Int32Array = Float32Array> { name: string; shape: number[]; value: T }
type AnyTensor = NamedTensor<Float32Array> | NamedTensor<Int32Array>;

export function encodeSafetensors(tensors: AnyTensor[], metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of tensors) {
    const bytes = t.value.length * 4;
    const dtype = t.value instanceof Int32Array ? 'I32' : 'F32';
    header[t.name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  // Pad the header with spaces so the data starts 8-byte aligned.
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const out = new Uint8Array(8 + headerBytes.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let pos = 8 + headerBytes.length;
  for (const t of tensors) {
    out.set(new Uint8Array(t.value.buffer, t.value.byteOffset, t.value.length * 4), pos);
    pos += t.value.length * 4;
  }
  return out;
}

export interface DecodedSafetensors {
  tensors: Map<string, NamedTensor>;
  ints: Map<string, NamedTensor<Int32Array>>;
  metadata: Record<string, string>;
}

export function decodeSafetensors(bytes: Uint8Array): DecodedSafetensors {
  if (bytes.length < 8) throw new Error('safetensors: file shorter than its header length');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (headerLength > bytes.length - 8) throw new Error('safetensors: header length exceeds the file');
  const header = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + 8, headerLength).toString('utf8')) as Record<string, any>;
  const dataStart = 8 + headerLength;
  const tensors = new Map<string, NamedTensor>();
  const ints = new Map<string, NamedTensor<Int32Array>>();
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    if (entry.dtype !== 'F32' && entry.dtype !== 'I32') throw new Error(`safetensors: tensor ${name} has dtype ${entry.dtype}, only F32 and I32 are supported`);
    const [begin, end] = entry.data_offsets as [number, number];
    const count = (entry.shape as number[]).reduce((a, b) => a * b, 1);
    if (end - begin !== count * 4 || dataStart + end > bytes.length) throw new Error(`safetensors: tensor ${name} has inconsistent offsets`);
    // Copy into a fresh, aligned array (the source offset may not be 4-byte aligned).
    const value = entry.dtype === 'F32' ? new Float32Array(count) : new Int32Array(count);
    new Uint8Array(value.buffer).set(bytes.subarray(dataStart + begin, dataStart + end));
    if (value instanceof Float32Array) tensors.set(name, { name, shape: entry.shape, value });
    else ints.set(name, { name, shape: entry.shape, value });
  }
  return { tensors, ints, metadata: (header.__metadata__ ?? {}) as Record<string, string> };
}
