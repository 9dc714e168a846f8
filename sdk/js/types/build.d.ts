// Types of `floe-sdk/build`: building a function from a script.

export class BuildError extends Error {}

export interface Built {
  kind: 'http' | 'event';
  hooks: Array<'init' | 'preFreeze' | 'preStop'>;
  /** It imports `floe-sdk/gpu` (built for a `-gpu` world). */
  gpu: boolean;
  /** It imports `floe-sdk/config` (built for a `-config` world). */
  config: boolean;
  /**
   * It imports `floe-sdk/trigger` or `floe-sdk/mqtt` (an event function,
   * built for a `-sources` world, which imports both interfaces).
   */
  sources: boolean;
  /** The component's absolute path. */
  output: string;
  /** Its size in bytes. */
  size: number;
  /** How long the build took, in milliseconds. */
  ms: number;
}

/** Builds the module at `source` into a component at `output`. */
export function build(options: { source: string; output: string; debug?: boolean }): Promise<Built>;

/**
 * What the module at `source` exports and imports: its kind, hooks and
 * optional imports. Rejects with a `BuildError` for a module floe cannot run
 * (no handler, both handlers, or an HTTP function importing event sources).
 */
export function inspect(
  source: string,
): Promise<Pick<Built, 'kind' | 'hooks' | 'gpu' | 'config' | 'sources'>>;

/** The WIT world a module of this shape is built for, e.g. `floe:js/event-sources`. */
export function worldOf(shape: Partial<Pick<Built, 'gpu' | 'config' | 'sources'>> & Pick<Built, 'kind'>): string;
