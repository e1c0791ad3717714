import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { DatasetError, parseCsvDataset, type CsvOptions } from '../../src/datasets/index.js';

const OPTS = { id: 'ds_test', name: 'test' };

function parse(text: string, options: Partial<CsvOptions> = {}) {
  return parseCsvDataset(text, { ...OPTS, ...options });
}

function csvError(text: string, options: Partial<CsvOptions> = {}): DatasetError {
  try {
    parse(text, options);
  } catch (err) {
    expect(err).toBeInstanceOf(DatasetError);
    return err as DatasetError;
  }
  throw new Error('expected a DatasetError');
}

describe('parseCsvDataset', () => {
  it('parses a real file: features, string labels in sorted order, no test split', () => {
    const text = readFileSync(new URL('../fixtures/datasets/iris-sample.csv', import.meta.url), 'utf8');
    const ds = parse(text, { id: 'ds_iris', name: 'iris sample' });
    expect(ds).toMatchObject({
      id: 'ds_iris', name: 'iris sample', inputShape: [4], features: 4, classes: 3,
      classNames: ['setosa', 'versicolor', 'virginica'], valueRange: null, test: null,
    });
    expect(ds.train.n).toBe(6);
    expect(Array.from(ds.train.y)).toEqual([0, 0, 1, 1, 2, 2]);
    expect(Array.from(ds.train.x.subarray(0, 8))).toEqual([5.1, 3.5, 1.4, 0.2, 4.9, 3.0, 1.4, 0.2].map(Math.fround));
    expect(ds.train.x).toHaveLength(24);
  });

  it('sorts integer labels numerically and merges equal values', () => {
    const ds = parse('x,y\n1,10\n2,2\n3,1\n4,02\n');
    expect(ds.classNames).toEqual(['1', '2', '10']);
    expect(Array.from(ds.train.y)).toEqual([2, 1, 0, 1]);
  });

  it('sorts mixed labels as strings', () => {
    const ds = parse('x,y\n1,10\n2,2\n3,b\n');
    expect(ds.classNames).toEqual(['10', '2', 'b']);
  });

  it('selects the label column by name or index, default the last', () => {
    const text = 'kind,a,b\ncat,1,2\ndog,3,4\n';
    for (const label of ['kind', 0]) {
      const ds = parse(text, { label });
      expect(ds.classNames).toEqual(['cat', 'dog']);
      expect(Array.from(ds.train.x)).toEqual([1, 2, 3, 4]);
    }
    const byDefault = parse('a,b,kind\n1,2,cat\n3,4,dog\n');
    expect(byDefault.classNames).toEqual(['cat', 'dog']);
    expect(Array.from(byDefault.train.x)).toEqual([1, 2, 3, 4]);
  });

  it('rejects a label column that is not in the header', () => {
    const byName = csvError('a,b\n1,2\n', { label: 'species' });
    expect(byName.code).toBe('CSV_INVALID');
    expect(byName.message).toContain('"species" is not in the header (columns: a, b)');
    expect(csvError('a,b\n1,2\n', { label: 2 }).message).toContain('index 2 is out of range');
    expect(csvError('a,b\n1,2\n', { label: -1 }).message).toContain('index -1 is out of range');
  });

  it('handles quoted fields with commas, escaped quotes and newlines', () => {
    const ds = parse('"width, cm",height,label\n"1.5","2",a\n2,"3","say ""hi"""\n"3",4,"two\nlines"\n5,6,a\n');
    expect(ds.inputShape).toEqual([2]);
    expect(Array.from(ds.train.x)).toEqual([1.5, 2, 2, 3, 3, 4, 5, 6]);
    expect(ds.classNames).toEqual(['a', 'say "hi"', 'two\nlines']);
    expect(Array.from(ds.train.y)).toEqual([0, 1, 2, 0]);
  });

  it('counts physical lines through quoted newlines and blank lines', () => {
    const err = csvError('a,label\n"1",x\n\n2,"multi\nline"\n3\n');
    expect(err.message).toBe('line 6: expected 2 fields like the header, found 1');
    expect(err.details).toEqual({ line: 6 });
  });

  it('accepts CRLF, a byte order mark and a missing trailing newline', () => {
    const lf = parse('a,b,label\n1,2,x\n3,4,y\n');
    const crlf = parse('\ufeffa,b,label\r\n1,2,x\r\n3,4,y');
    expect(crlf.classNames).toEqual(lf.classNames);
    expect(crlf.train).toEqual(lf.train);
    expect(csvError('a,label\r\n1,x\r\nzz,y\r\n').message).toContain('line 3, column "a"');
  });

  it('rejects a wrong column count with the line number', () => {
    const err = csvError('a,b,label\n1,2,x\n1,2,3,y\n');
    expect(err.code).toBe('CSV_INVALID');
    expect(err.message).toBe('line 3: expected 3 fields like the header, found 4');
  });

  it.each([
    ['abc', '"abc" is not a number'],
    ['', 'an empty value is not a number'],
    ['Infinity', '"Infinity" is not a number'],
    ['NaN', '"NaN" is not a number'],
    ['0x10', '"0x10" is not a number'],
    ['1e39', '1e39 is outside the float32 range'],
  ])('rejects the feature value %j with line and column', (value, message) => {
    const err = csvError(`a,b,label\n1,2,x\n3,${value},y\n`);
    expect(err.code).toBe('CSV_INVALID');
    expect(err.message).toContain(`line 3, column "b": ${message}`);
    expect(err.details).toEqual({ line: 3, column: 'b' });
  });

  it('accepts the usual decimal spellings', () => {
    const ds = parse('a,label\n-1.5e3,x\n+.5,y\n 7. ,x\n');
    expect(Array.from(ds.train.x)).toEqual([-1500, 0.5, 7]);
  });

  it('rejects an empty label, an unclosed quote, and too few rows or classes', () => {
    expect(csvError('a,label\n1,x\n2, \n').message).toBe('line 3, column "label": the label is empty');
    expect(csvError('a,label\n1,x\n2,"y\n3,z\n').message).toBe('line 3: a quoted field is never closed');
    expect(csvError('').message).toContain('empty');
    expect(csvError('label\nx\n').message).toContain('at least two columns');
    expect(csvError('a,label\n').message).toContain('0 data rows');
    expect(csvError('a,label\n1,x\n').message).toContain('1 data row;');
    expect(csvError('a,label\n1,x\n2,x\n').message).toContain('single class ("x")');
  });

  it('enforces maxRows and maxFeatures with CSV_TOO_LARGE', () => {
    const text = 'a,b,label\n1,2,x\n3,4,y\n5,6,x\n';
    expect(parse(text, { maxRows: 3, maxFeatures: 2 }).train.n).toBe(3);
    const rows = csvError(text, { maxRows: 2 });
    expect(rows.code).toBe('CSV_TOO_LARGE');
    expect(rows.message).toContain('limit is 2');
    expect(rows.details).toMatchObject({ limit: 2, line: 4 });
    const features = csvError(text, { maxFeatures: 1 });
    expect(features.code).toBe('CSV_TOO_LARGE');
    expect(features.message).toBe('the CSV has 2 feature columns; the limit is 1');
  });

  it('grows past its initial buffer without losing rows', () => {
    const lines = Array.from({ length: 3000 }, (_, i) => `${i},${i % 3}`);
    const ds = parse(`v,label\n${lines.join('\n')}\n`);
    expect(ds.train.n).toBe(3000);
    expect(ds.train.x[2999]).toBe(2999);
    expect(ds.train.x).toHaveLength(3000);
  });
});
