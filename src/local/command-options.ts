import { err, ok, type Result } from '../core/result.js';

/**
 * The options of a `carpool` subcommand, split from its words: `--name value`, `--name=value`,
 * switches that take no value, options that may be given more than once (`repeated`, each
 * value kept in order), and `--` after which everything is a word. Unknown options, a value
 * missing, a switch given a value and any other option given twice are errors that name the
 * option. What the words and values mean is the subcommand's business.
 */
export interface CommandOptions {
  readonly words: readonly string[];
  readonly values: ReadonlyMap<string, string>;
  readonly flags: ReadonlySet<string>;
  /** The values of the repeated options that were given, in order. */
  readonly lists: ReadonlyMap<string, readonly string[]>;
}

export function splitCommandOptions(
  argv: readonly string[],
  spec: { readonly valued: readonly string[]; readonly switches: readonly string[]; readonly repeated?: readonly string[] },
): Result<CommandOptions, string> {
  const values = new Map<string, string>();
  const lists = new Map<string, string[]>();
  const flags = new Set<string>();
  const words: string[] = [];
  let optionsEnded = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (optionsEnded || !arg.startsWith('--')) {
      words.push(arg);
      continue;
    }
    if (arg === '--') {
      optionsEnded = true;
      continue;
    }
    const [name = '', inline] = arg.slice(2).split(/=(.*)/s, 2);
    if (spec.switches.includes(name)) {
      if (inline !== undefined) return err(`--${name} takes no value`);
      flags.add(name);
      continue;
    }
    const repeated = spec.repeated?.includes(name) ?? false;
    if (!spec.valued.includes(name) && !repeated) return err(`unknown option --${name}`);
    const value = inline ?? argv[++i];
    if (value === undefined || (inline === undefined && value.startsWith('--'))) return err(`--${name} needs a value`);
    if (repeated) {
      lists.set(name, [...(lists.get(name) ?? []), value]);
      continue;
    }
    if (values.has(name)) return err(`--${name} is given twice`);
    values.set(name, value);
  }
  return ok({ words, values, flags, lists });
}
