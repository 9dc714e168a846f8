// Types of `floe-sdk/build`: building a function from a script.

export class BuildError extends Error {}

export interface Built {
  kind: 'http' | 'event';
  hooks: Array<'init' | 'preFreeze' | 'preStop'>;
  /** The component's absolute path. */
  output: string;
  /** Its size in bytes. */
  size: number;
  /** How long the build took, in milliseconds. */
  ms: number;
}

/** Builds the module at `source` into a component at `output`. */
export function build(options: { source: string; output: string; debug?: boolean }): Promise<Built>;

/** What the module at `source` exports: its kind and hooks. */
export function inspect(source: string): Promise<Pick<Built, 'kind' | 'hooks'>>;
