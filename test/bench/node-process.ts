// A `carpool node` for the benchmarks that stops when its harness goes. The node takes no notice
// of its standard input, so this entry holds it, as the emulator's does (./emulator-process.ts),
// and when it ends (the harness exited, or was killed mid-run) sends the node the SIGTERM it
// stops on (it drains, and writes its CPU profile if it has one). The arguments are the node's
// temporary folder, removed when the process exits (the harness removes it too, but a killed
// harness cannot), the module to run (src/cli.ts, or the build's dist/cli.js, which tsx leaves as
// it is), then the command line of `carpool`.
import { rmSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [dir, entry, ...args] = process.argv.slice(2);
if (dir === undefined || !isAbsolute(dir) || entry === undefined) throw new Error('usage: node-process.ts ABSOLUTE-TEMP-DIR ENTRY-MODULE CARPOOL-ARGS…');
process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
process.stdin.once('end', () => process.kill(process.pid, 'SIGTERM')).resume();
// Unreferenced, the pipe does not keep the process alive: the node exits by itself once it has
// stopped, as it does without this entry, and the pipe still tells while anything else runs.
(process.stdin as { unref?: () => void }).unref?.();
// The CLI reads its command line from process.argv, after the script's own path.
process.argv = [process.argv[0]!, resolve(entry), ...args];
await import(pathToFileURL(resolve(entry)).href);
