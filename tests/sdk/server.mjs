// Starts hwledger servers for the SDK tests and stops them afterwards.
//
//   HWLEDGER_BIN          the hwledger program: the model server is `hwledger serve --model demo`
//   HWLEDGER_TEST_SERVER  tests/server's hwledger_test_server: the scripted server (tool calls and
//                         other exact-output cases), and the model server when HWLEDGER_BIN is unset
// Without them, the usual build folders are searched.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const API_KEY = 'sdk-test-key';
export const CONTEXT = 2048;

function find(envName, relative) {
  if (process.env[envName] !== undefined) return process.env[envName] || null;  // "" means none
  for (const dir of ['build', 'build-http', 'build-release', 'build-debug']) {
    const candidate = path.join(repo, dir, relative);
    if (existsSync(candidate)) return candidate;
  }
  return null;
}

export const hwledgerBin = find('HWLEDGER_BIN', 'hwledger');
export const testServerBin = find('HWLEDGER_TEST_SERVER', path.join('tests', 'server', 'hwledger_test_server'));

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function waitHealthy(base, child, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    try {
      const res = await fetch(`${base}/health`, { signal: AbortSignal.timeout(2000) });
      if (res.ok) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`server at ${base} not healthy after ${timeoutMs} ms`);
}

// kind: 'model' (the real engine with the demo model) or 'scripted' (tokenizer: a folder or demo).
export async function startServer({ kind = 'model', tokenizer = 'demo', extraArgs = [] } = {}) {
  const port = await freePort();
  let bin;
  let args;
  if (kind === 'model' && hwledgerBin) {
    bin = hwledgerBin;
    args = ['serve', '--model', 'demo', '--host', '127.0.0.1', '--port', String(port), '--api-key', API_KEY,
      '--max-context', String(CONTEXT), ...extraArgs];
  } else {
    if (!testServerBin) throw new Error('set HWLEDGER_BIN / HWLEDGER_TEST_SERVER (see tests/sdk/server.mjs)');
    bin = testServerBin;
    args = kind === 'model'
      ? ['--model', 'demo', '--context', String(CONTEXT)]
      : ['--scripted', tokenizer, '--context', '4096'];
    args.push('--port', String(port), '--api-key', API_KEY, ...extraArgs);
  }
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.on('data', (d) => { log += d; });
  child.stderr.on('data', (d) => { log += d; });
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitHealthy(base, child, 120_000);
  } catch (e) {
    child.kill('SIGKILL');
    throw new Error(`${e.message}\n${bin} ${args.join(' ')}\n${log}`);
  }
  return {
    base,
    port,
    log: () => log,
    async metric(name) {
      const text = await (await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${API_KEY}` } })).text();
      const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
      return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
    },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export async function eventually(fn, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}
