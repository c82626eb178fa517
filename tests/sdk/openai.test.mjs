// The OpenAI SDK against hwledger serving the demo model (random weights: the text is noise, but
// greedy decoding is deterministic, which is what these tests lean on).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';

import { API_KEY, CONTEXT, eventually, startServer } from './server.mjs';


let server;
let client;

before(async () => {
  server = await startServer({ kind: 'model' });
  client = new OpenAI({ apiKey: API_KEY, baseURL: `${server.base}/v1`, maxRetries: 0, timeout: 120_000 });
});
after(async () => server?.stop());

const model = 'demo';
const ask = (text) => [{ role: 'user', content: text }];

async function collect(stream) {
  let content = '';
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    const choice = chunk.choices[0];
    if (!choice) continue;
    content += choice.delta?.content ?? choice.text ?? '';
    if (choice.finish_reason) finish = choice.finish_reason;
  }
  return { content, finish, usage };
}

// A prompt whose greedy answer runs to max_tokens (no EOS), so length-based tests are exact.
async function longRunningPrompt(maxTokens) {
  for (let i = 0; i < 20; i++) {
    const messages = ask(`Tell me a long story, take ${i}.`);
    const res = await client.chat.completions.create({ model, messages, temperature: 0, max_tokens: maxTokens });
    if (res.choices[0].finish_reason === 'length') return { messages, res };
  }
  throw new Error('no prompt ran to max_tokens');
}

describe('OpenAI SDK', () => {
  test('lists the served model', async () => {
    const page = await client.models.list();
    assert.deepEqual(page.data.map((m) => m.id), ['demo']);
    assert.equal(page.data[0].object, 'model');
  });

  test('chat completion, non-streaming and streaming agree', async () => {
    const messages = ask('Hello there!');
    const res = await client.chat.completions.create({ model, messages, temperature: 0, max_tokens: 20 });
    assert.equal(res.object, 'chat.completion');
    assert.equal(res.choices[0].message.role, 'assistant');
    assert.equal(typeof res.choices[0].message.content, 'string');
    assert.ok(['stop', 'length'].includes(res.choices[0].finish_reason));
    assert.ok(res.usage.prompt_tokens > 0);
    assert.ok(res.usage.completion_tokens > 0 && res.usage.completion_tokens <= 20);
    assert.equal(res.usage.total_tokens, res.usage.prompt_tokens + res.usage.completion_tokens);

    const stream = await client.chat.completions.create({
      model, messages, temperature: 0, max_tokens: 20, stream: true, stream_options: { include_usage: true },
    });
    const s = await collect(stream);
    assert.equal(s.content, res.choices[0].message.content);
    assert.equal(s.finish, res.choices[0].finish_reason);
    assert.equal(s.usage.completion_tokens, res.usage.completion_tokens);
  });

  test('completions, non-streaming and streaming agree', async () => {
    const res = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 12, temperature: 0 });
    assert.equal(res.object, 'text_completion');
    assert.ok(res.usage.completion_tokens <= 12);
    const stream = await client.completions.create({
      model, prompt: 'Once upon a time', max_tokens: 12, temperature: 0, stream: true,
    });
    const s = await collect(stream);
    assert.equal(s.content, res.choices[0].text);
  });

  test('max_tokens ends the answer with finish_reason length', async () => {
    const { messages } = await longRunningPrompt(40);
    const res = await client.chat.completions.create({ model, messages, temperature: 0, max_completion_tokens: 7 });
    assert.equal(res.choices[0].finish_reason, 'length');
    assert.equal(res.usage.completion_tokens, 7);
  });

  test('stop strings end the answer and are never shown', async () => {
    const { messages, res } = await longRunningPrompt(40);
    const full = res.choices[0].message.content;
    // A piece from the middle of the greedy answer becomes the stop string.
    const stop = full.slice(Math.floor(full.length / 2), Math.floor(full.length / 2) + 3);
    const cut = full.slice(0, full.indexOf(stop));
    const stopped = await client.chat.completions.create({ model, messages, temperature: 0, max_tokens: 40, stop: [stop] });
    assert.equal(stopped.choices[0].message.content, cut);
    assert.equal(stopped.choices[0].finish_reason, 'stop');
    const streamed = await collect(await client.chat.completions.create({
      model, messages, temperature: 0, max_tokens: 40, stop: stop, stream: true,
    }));
    assert.equal(streamed.content, cut);
    assert.equal(streamed.finish, 'stop');
  });

  test('a seed makes sampling reproducible', async () => {
    const run = async (seed) => (await client.chat.completions.create({
      model, messages: ask('Pick some words.'), temperature: 1.0, top_p: 0.95, seed, max_tokens: 16,
    })).choices[0].message.content;
    const a = await run(1234);
    assert.equal(await run(1234), a);
    assert.notEqual(await run(4321), a);
  });

  test('a repeated prefix reports cached prompt tokens', async () => {
    const system = { role: 'system', content: 'You are a careful assistant. '.repeat(20) };
    const first = await client.chat.completions.create({ model, messages: [system, ...ask('one')], max_tokens: 2 });
    const second = await client.chat.completions.create({ model, messages: [system, ...ask('two')], max_tokens: 2 });
    assert.ok(second.usage.prompt_tokens_details.cached_tokens > 0,
      JSON.stringify({ first: first.usage, second: second.usage }));
  });

  test('logprobs with top alternatives', async () => {
    const res = await client.chat.completions.create({
      model, messages: ask('Hi'), temperature: 0, max_tokens: 4, logprobs: true, top_logprobs: 3,
    });
    const content = res.choices[0].logprobs.content;
    assert.equal(content.length, res.usage.completion_tokens - (res.choices[0].finish_reason === 'stop' ? 1 : 0));
    for (const entry of content) {
      assert.ok(entry.logprob <= 0);
      assert.equal(entry.top_logprobs.length, 3);
    }
  });

  test('tools and a tool result go through the template', async () => {
    const tools = [{
      type: 'function',
      function: { name: 'get_time', description: 'The time', parameters: { type: 'object', properties: {} } },
    }];
    const messages = [
      ...ask('What time is it?'),
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_time', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '12:00' },
    ];
    const res = await client.chat.completions.create({ model, messages, tools, max_tokens: 4 });
    assert.ok(['stop', 'length', 'tool_calls'].includes(res.choices[0].finish_reason));
  });

  test('32 concurrent streams all complete with the right content', async () => {
    const prompts = Array.from({ length: 32 }, (_, i) => ask(`Stream number ${i}`));
    const expected = [];
    for (const messages of prompts) {
      const res = await client.chat.completions.create({ model, messages, temperature: 0, max_tokens: 12 });
      expected.push(res.choices[0].message.content);
    }
    const got = await Promise.all(prompts.map(async (messages) => (await collect(
      await client.chat.completions.create({ model, messages, temperature: 0, max_tokens: 12, stream: true }),
    )).content));
    assert.deepEqual(got, expected);
  });

  test('client abort mid-stream frees the slot', async () => {
    const { messages } = await longRunningPrompt(400);
    const before = (await server.metric('hwledger_client_disconnects_total')) ?? 0;
    const stream = await client.chat.completions.create({
      model, messages, temperature: 0, max_tokens: 400, stream: true,
    });
    let chunks = 0;
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta?.content && ++chunks === 3) break;  // leaving the loop aborts the request
    }
    assert.ok(await eventually(async () => (await server.metric('hwledger_client_disconnects_total')) === before + 1));
    assert.ok(await eventually(async () => (await server.metric('hwledger_running_sequences')) === 0));
  });

  describe('errors', () => {
    test('wrong or missing API key: 401', async () => {
      const bad = new OpenAI({ apiKey: 'wrong', baseURL: `${server.base}/v1`, maxRetries: 0 });
      await assert.rejects(bad.models.list(), (e) => e.status === 401 && e instanceof OpenAI.AuthenticationError);
      const health = await fetch(`${server.base}/health`);
      assert.equal(health.status, 200);
    });

    test('malformed JSON: 400 naming the problem', async () => {
      const res = await fetch(`${server.base}/v1/chat/completions`, {
        method: 'POST', headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
        body: '{"model": "demo", "messages": [',
      });
      assert.equal(res.status, 400);
      const body = await res.json();
      assert.equal(body.error.type, 'invalid_request_error');
      assert.match(body.error.message, /not valid JSON/);
    });

    test('wrong types: 400 naming the field and the type', async () => {
      await assert.rejects(
        client.chat.completions.create({ model, messages: ask('hi'), temperature: 'hot' }),
        (e) => e.status === 400 && /'temperature' must be a number, got a string/.test(e.message),
      );
      await assert.rejects(
        client.chat.completions.create({ model, messages: ask('hi'), n: 3 }),
        (e) => e.status === 400 && /'n' must be 1/.test(e.message),
      );
    });

    test('unknown model: 404', async () => {
      await assert.rejects(
        client.chat.completions.create({ model: 'gpt-4o', messages: ask('hi') }),
        (e) => e.status === 404 && e instanceof OpenAI.NotFoundError && /gpt-4o/.test(e.message) && /demo/.test(e.message),
      );
    });

    test('oversize body: 413', async () => {
      await assert.rejects(
        client.chat.completions.create({ model, messages: ask('x'.repeat(9 << 20)) }),
        (e) => e.status === 413,
      );
    });

    test('a prompt longer than the context: 400', async () => {
      await assert.rejects(
        client.chat.completions.create({ model, messages: ask('many words '.repeat(CONTEXT)) }),
        (e) => e.status === 400 && e.code === 'context_length_exceeded' && /maximum context length/.test(e.message),
      );
    });
  });
});
