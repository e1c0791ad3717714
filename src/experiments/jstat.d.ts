// The part of jstat (no bundled types) that stats.ts uses.
declare module 'jstat' {
  export const jStat: {
    studentt: {
      /** Quantile of Student's t with `dof` degrees of freedom (any positive real). */
      inv(p: number, dof: number): number;
    };
  };
}
