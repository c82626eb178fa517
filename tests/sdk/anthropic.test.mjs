// The Anthropic SDK against hwledger serving the demo model.
import Anthropic from '@anthropic-ai/sdk';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { API_KEY, CONTEXT, startServer } from './server.mjs';

let server;
let client;

before(async () => {
  server = await startServer({ kind: 'model' });
  client = new Anthropic({ apiKey: API_KEY, baseURL: server.base, maxRetries: 0, timeout: 120_000 });
});
after(async () => server?.stop());

const model = 'demo';
const ask = (text) => [{ role: 'user', content: text }];
const textOf = (message) => message.content.filter((b) => b.type === 'text').map((b) => b.text).join('');

describe('Anthropic SDK', () => {
  test('a message, non-streaming and streaming agree', async () => {
    const params = { model, max_tokens: 20, temperature: 0, system: 'You are terse.', messages: ask('Hello!') };
    const msg = await client.messages.create(params);
    assert.equal(msg.type, 'message');
    assert.equal(msg.role, 'assistant');
    assert.ok(['end_turn', 'max_tokens'].includes(msg.stop_reason));
    assert.ok(msg.usage.input_tokens > 0);
    assert.ok(msg.usage.output_tokens > 0 && msg.usage.output_tokens <= 20);

    const events = [];
    const stream = client.messages.stream(params);
    stream.on('streamEvent', (e) => events.push(e.type));
    const final = await stream.finalMessage();
    assert.equal(textOf(final), textOf(msg));
    assert.equal(final.stop_reason, msg.stop_reason);
    assert.equal(final.usage.output_tokens, msg.usage.output_tokens);
    assert.equal(events[0], 'message_start');
    assert.deepEqual(events.slice(-2), ['message_delta', 'message_stop']);
    if (textOf(msg).length > 0) {
      assert.ok(events.includes('content_block_start') && events.includes('content_block_delta') && events.includes('content_block_stop'));
    }
  });

  test('max_tokens and stop_sequences', async () => {
    let prompt;
    let full;
    for (let i = 0; i < 20 && !prompt; i++) {
      const msg = await client.messages.create({ model, max_tokens: 40, temperature: 0, messages: ask(`Story ${i}`) });
      if (msg.stop_reason === 'max_tokens') [prompt, full] = [ask(`Story ${i}`), textOf(msg)];
    }
    assert.ok(prompt, 'no prompt ran to max_tokens');
    const short = await client.messages.create({ model, max_tokens: 5, temperature: 0, messages: prompt });
    assert.equal(short.stop_reason, 'max_tokens');
    assert.equal(short.usage.output_tokens, 5);

    const stop = full.slice(Math.floor(full.length / 2), Math.floor(full.length / 2) + 3);
    const stopped = await client.messages.create({ model, max_tokens: 40, temperature: 0, messages: prompt, stop_sequences: [stop] });
    assert.equal(stopped.stop_reason, 'stop_sequence');
    assert.equal(stopped.stop_sequence, stop);
    assert.equal(textOf(stopped), full.slice(0, full.indexOf(stop)));
  });

  test('count_tokens matches the usage of the same request', async () => {
    const params = { model, system: 'Count me.', messages: ask('How many tokens are in here?') };
    const counted = await client.messages.countTokens(params);
    const msg = await client.messages.create({ ...params, max_tokens: 1 });
    assert.equal(counted.input_tokens, msg.usage.input_tokens + (msg.usage.cache_read_input_tokens ?? 0));
  });

  test('a repeated prefix reports cache_read_input_tokens', async () => {
    const system = 'You follow the rules carefully. '.repeat(20);
    await client.messages.create({ model, max_tokens: 2, system, messages: ask('first') });
    const second = await client.messages.create({ model, max_tokens: 2, system, messages: ask('second') });
    assert.ok(second.usage.cache_read_input_tokens > 0, JSON.stringify(second.usage));
    const streamed = await client.messages.stream({ model, max_tokens: 2, system, messages: ask('third') }).finalMessage();
    assert.ok(streamed.usage.cache_read_input_tokens > 0, JSON.stringify(streamed.usage));
  });

  test('tool_use and tool_result blocks go through the template', async () => {
    const tools = [{ name: 'get_time', description: 'The time', input_schema: { type: 'object', properties: {} } }];
    const messages = [
      ...ask('What time is it?'),
      { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'get_time', input: {} }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: '12:00' }] },
    ];
    const msg = await client.messages.create({ model, max_tokens: 4, tools, messages });
    assert.equal(msg.type, 'message');
  });

  describe('errors', () => {
    test('wrong API key: 401 authentication_error', async () => {
      const bad = new Anthropic({ apiKey: 'nope', baseURL: server.base, maxRetries: 0 });
      await assert.rejects(bad.messages.create({ model, max_tokens: 4, messages: ask('hi') }),
        (e) => e.status === 401 && e instanceof Anthropic.AuthenticationError && e.error?.error?.type === 'authentication_error');
    });

    test('missing max_tokens and wrong types: 400 invalid_request_error', async () => {
      await assert.rejects(client.messages.create({ model, messages: ask('hi') }),
        (e) => e.status === 400 && e.error?.error?.type === 'invalid_request_error' && /max_tokens/.test(e.message));
      await assert.rejects(client.messages.create({ model, max_tokens: 'ten', messages: ask('hi') }),
        (e) => e.status === 400 && /'max_tokens' must be an integer, got a string/.test(e.message));
    });

    test('unknown model: 404 not_found_error', async () => {
      await assert.rejects(client.messages.create({ model: 'claude-x', max_tokens: 4, messages: ask('hi') }),
        (e) => e.status === 404 && e.error?.error?.type === 'not_found_error');
    });

    test('oversize body: 413 request_too_large', async () => {
      await assert.rejects(client.messages.create({ model, max_tokens: 4, messages: ask('y'.repeat(9 << 20)) }),
        (e) => e.status === 413 && e.error?.error?.type === 'request_too_large');
    });

    test('a prompt longer than the context: 400', async () => {
      await assert.rejects(client.messages.create({ model, max_tokens: 4, messages: ask('many words '.repeat(CONTEXT)) }),
        (e) => e.status === 400 && /maximum context length/.test(e.message));
    });
  });
});
