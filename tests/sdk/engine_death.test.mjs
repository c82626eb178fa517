// The engine dies (kill -9) while the SDKs wait on it: each SDK raises an API error (the
// supervisor answers for the dead engine: docs/process-model.md, "Requests in flight when the
// engine dies"), and a retry lands on the next engine. Needs `hwledger serve` (HWLEDGER_BIN).
import Anthropic from '@anthropic-ai/sdk';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';

import { API_KEY, eventually, hwledgerBin, startServer } from './server.mjs';

let server;
let openai;
let anthropic;
const model = 'demo';

before(async () => {
  if (!hwledgerBin) return;
  server = await startServer({ kind: 'model' });
  openai = new OpenAI({ apiKey: API_KEY, baseURL: `${server.base}/v1`, maxRetries: 0, timeout: 60_000 });
  anthropic = new Anthropic({ apiKey: API_KEY, baseURL: server.base, maxRetries: 0, timeout: 60_000 });
});
after(async () => server?.stop());

// The pid of the latest engine started (or that became ready), from the supervisor's log.
function lastPid(what) {
  const pids = [...server.log().matchAll(new RegExp(`${what} pid (\\d+)`, 'g'))].map((m) => Number(m[1]));
  return pids.length ? pids[pids.length - 1] : 0;
}
const enginePid = () => lastPid('started engine');

function killEngine() {
  const pid = enginePid();
  assert.ok(pid > 1, `no engine pid in the log:\n${server.log()}`);
  process.kill(pid, 'SIGKILL');
  return pid;
}

async function nextEngine(oldPid) {
  assert.ok(await eventually(async () => lastPid('engine ready:') !== oldPid && lastPid('engine ready:') !== 0,
    30_000), server.log());
}

describe('the engine dies mid-request', { skip: !hwledgerBin && 'needs HWLEDGER_BIN (hwledger serve)' }, () => {
  test('OpenAI: a stream ends with an APIError, and a retry is served by the next engine', async () => {
    const stream = await openai.chat.completions.create({
      model, messages: [{ role: 'user', content: 'Tell me everything.' }], temperature: 0.7, seed: 1,
      max_tokens: 1500, stream: true,
    });
    let chunks = 0;
    let oldPid = 0;
    await assert.rejects(async () => {
      for await (const chunk of stream) {
        if (chunk.choices[0]?.delta?.content && ++chunks === 2) oldPid = killEngine();
      }
    }, (e) => e instanceof OpenAI.APIError && /engine serving this request was killed/.test(e.message));
    assert.ok(oldPid > 0, 'the stream ended before the engine was killed');
    await nextEngine(oldPid);
    const res = await openai.chat.completions.create({
      model, messages: [{ role: 'user', content: 'Hello again' }], max_tokens: 4,
    });
    assert.ok(res.choices[0].finish_reason);
  });

  test('Anthropic: a stream raises the error event; a non-streaming request gets a 503 api_error', async () => {
    // Greedy, so the answer is the same every run: the demo model's greedy answers to these
    // prompts run to max_tokens (a sampled one could end early on EOS, before the kill).
    const stream = anthropic.messages.stream({
      model, max_tokens: 1500, temperature: 0, messages: [{ role: 'user', content: 'Tell me everything.' }],
    });
    let deltas = 0;
    let oldPid = 0;
    stream.on('text', () => { if (++deltas === 2) oldPid = killEngine(); });
    await assert.rejects(stream.finalMessage(), (e) => e instanceof Anthropic.APIError && /api_error/.test(e.message));
    assert.ok(oldPid > 0, 'the stream ended before the engine was killed');
    await nextEngine(oldPid);

    // Non-streaming: the request is running when the engine dies (2000 greedy tokens, nearly the
    // served context of 2048, take long enough for /health to show it running).
    const pending = anthropic.messages.create({
      model, max_tokens: 2000, temperature: 0, messages: [{ role: 'user', content: 'Tell me everything again.' }],
    });
    const pid = enginePid();
    assert.ok(await eventually(async () => {
      const h = await (await fetch(`${server.base}/health`)).json();
      return h.running === 1;
    }));
    process.kill(pid, 'SIGKILL');
    await assert.rejects(pending, (e) => e.status === 503 && e.error?.error?.type === 'api_error');
    await nextEngine(pid);
  });
});
