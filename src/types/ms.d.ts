// `ms` ships its types as dist/index.d.ts but its package "exports" has no "types" condition, so
// TypeScript's node16 resolution cannot see them from CommonJS. These mirror the shipped ones
// for the two calls corral makes (parse a duration string, format milliseconds).
declare module 'ms' {
  export type StringValue = string;
  function ms(value: StringValue, options?: { long?: boolean }): number;
  function ms(value: number, options?: { long?: boolean }): string;
  export default ms;
}
