// The command lines of `npm run chaos`: `--name value` pairs from a known set, and whole numbers
// within bounds. Shared by the crash run (run-chaos.ts) and the WAN run (run-wan-chaos.ts).

export interface ChaosOptions {
  /** The value of `name`, or undefined when not given. */
  readonly text: (name: string) => string | undefined;
  /** The whole number given for `name` (or `fallback`), or undefined when it is not one in [min, max]. */
  readonly integer: (name: string, fallback: number, min: number, max: number) => number | undefined;
}

/** The options, or a message: `usage` for --help, an error followed by `usage` otherwise. */
export function parseChaosOptions(argv: readonly string[], names: readonly string[], usage: string): ChaosOptions | string {
  const given = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--help') return usage;
    if (!names.includes(arg) || i + 1 >= argv.length) return `unknown option or missing value: ${arg}\n${usage}`;
    given.set(arg, argv[++i] as string);
  }
  return {
    text: (name) => given.get(name),
    integer: (name, fallback, min, max) => {
      const text = given.get(name);
      const value = text === undefined ? fallback : Number(text);
      return Number.isSafeInteger(value) && value >= min && value <= max ? value : undefined;
    },
  };
}
