// Proves `carpool client` reads its command line as documented and refuses bad options by name.
import { describe, expect, it } from 'vitest';
import { parseClientArgs } from '../../src/local/client-args.js';

describe('parseClientArgs', () => {
  it('reads the options and joins the remaining words into the prompt', () => {
    const parsed = parseClientArgs(['--region', 'eu-west', '--tenant=trial', '--unary', '--max-tokens', '64', 'Say', 'hello']);
    expect(parsed.ok && parsed.value).toMatchObject({ region: 'eu-west', tenant: 'trial', unary: true, maxTokens: 64, prompt: 'Say hello', usage: false });
  });

  it('has defaults, and takes a prompt after -- even if it looks like an option', () => {
    const parsed = parseClientArgs(['--', '--not-an-option']);
    expect(parsed.ok && parsed.value).toMatchObject({
      region: undefined,
      tenant: undefined,
      unary: false,
      maxTokens: 128,
      model: 'claude-sonnet-4-6',
      stateFile: '.carpool/local/state.json',
      prompt: '--not-an-option',
    });
  });

  it('takes --usage without a prompt', () => {
    const parsed = parseClientArgs(['--usage', '--tenant', 'demo']);
    expect(parsed.ok && parsed.value).toMatchObject({ usage: true, prompt: undefined });
  });

  it.each([
    [['Say hello', '--regoin', 'x'], /unknown option --regoin/],
    [['--region'], /--region needs a value/],
    [['--max-tokens', '0', 'hi'], /--max-tokens takes a number/],
    [['--max-tokens', '12abc', 'hi'], /--max-tokens takes a number/],
    [['--target', 'nowhere', 'hi'], /--target takes host:port/],
    [['--tenant', 'demo'], /give a prompt, or --usage/],
    [['--unary=yes', 'hi'], /--unary takes no value/],
  ])('refuses %j', (argv, message) => {
    const parsed = parseClientArgs(argv);
    expect(!parsed.ok && parsed.error).toMatch(message);
  });
});
