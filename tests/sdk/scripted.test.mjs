// Tool-call round trips and other exact-output cases, through the official SDKs, against the
// test server's scripted model: it answers what the prompt's [[reply:...]] says, with the real
// Qwen3 tokenizer and chat template, so the model's <tool_call> output is parsed for real.
import Anthropic from '@anthropic-ai/sdk';
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';

import { API_KEY, eventually, startServer, testServerBin } from './server.mjs';

const shared = process.env.HWLEDGER_SHARED_DIR
  ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'shared');

let server;
let openai;
let anthropic;

before(async () => {
  server = await startServer({ kind: 'scripted', tokenizer: path.join(shared, 'models', 'qwen3') });
  openai = new OpenAI({ apiKey: API_KEY, baseURL: `${server.base}/v1`, maxRetries: 0 });
  anthropic = new Anthropic({ apiKey: API_KEY, baseURL: server.base, maxRetries: 0 });
});
after(async () => server?.stop());

const model = 'scripted';
const weatherCall = '[[reply:<tool_call>\\n{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}\\n</tool_call>]]';
const openaiTools = [{
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Weather forecast for a city',
    parameters: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city'] },
  },
}];
const anthropicTools = [{
  name: 'get_weather',
  description: 'Weather forecast for a city',
  input_schema: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city'] },
}];

describe('tool calls with the OpenAI SDK', { skip: !testServerBin && 'no hwledger_test_server' }, () => {
  test('non-streaming round trip', async () => {
    const messages = [{ role: 'user', content: `Weather in Paris? ${weatherCall}` }];
    const first = await openai.chat.completions.create({ model, messages, tools: openaiTools });
    const choice = first.choices[0];
    assert.equal(choice.finish_reason, 'tool_calls');
    assert.equal(choice.message.content, null);
    assert.equal(choice.message.tool_calls.length, 1);
    const call = choice.message.tool_calls[0];
    assert.equal(call.type, 'function');
    assert.equal(call.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris', days: 2 });

    messages.push(choice.message);
    messages.push({ role: 'tool', tool_call_id: call.id, content: 'Sunny, 24 C. [[reply:It will be sunny in Paris.]]' });
    const second = await openai.chat.completions.create({ model, messages, tools: openaiTools });
    assert.equal(second.choices[0].message.content, 'It will be sunny in Paris.');
    assert.equal(second.choices[0].finish_reason, 'stop');
  });

  test('streamed tool_calls deltas: id and name first, then argument fragments', async () => {
    const stream = await openai.chat.completions.create({
      model, stream: true, tools: openaiTools, messages: [{ role: 'user', content: `Weather? ${weatherCall}` }],
    });
    const calls = [];
    let fragments = 0;
    let finish = null;
    for await (const chunk of stream) {
      const choice = chunk.choices[0];
      for (const d of choice?.delta?.tool_calls ?? []) {
        if (d.id) calls[d.index] = { id: d.id, name: d.function.name, arguments: '' };
        if (d.function?.arguments) {
          calls[d.index].arguments += d.function.arguments;
          fragments++;
        }
      }
      if (choice?.finish_reason) finish = choice.finish_reason;
    }
    assert.equal(calls.length, 1);
    assert.equal(calls[0].name, 'get_weather');
    assert.deepEqual(JSON.parse(calls[0].arguments), { city: 'Paris', days: 2 });
    assert.ok(fragments > 1, 'arguments should arrive in several fragments');
    assert.equal(finish, 'tool_calls');

    // The SDK's own accumulation helper agrees.
    const runner = openai.chat.completions.stream({
      model, tools: openaiTools, messages: [{ role: 'user', content: `Weather? ${weatherCall}` }],
    });
    const final = await runner.finalChatCompletion();
    assert.deepEqual(JSON.parse(final.choices[0].message.tool_calls[0].function.arguments), { city: 'Paris', days: 2 });
  });
});

describe('tool use with the Anthropic SDK', { skip: !testServerBin && 'no hwledger_test_server' }, () => {
  test('non-streaming round trip', async () => {
    const messages = [{ role: 'user', content: `Weather in Paris? ${weatherCall}` }];
    const first = await anthropic.messages.create({ model, max_tokens: 200, tools: anthropicTools, messages });
    assert.equal(first.stop_reason, 'tool_use');
    const use = first.content.find((b) => b.type === 'tool_use');
    assert.equal(use.name, 'get_weather');
    assert.deepEqual(use.input, { city: 'Paris', days: 2 });

    messages.push({ role: 'assistant', content: first.content });
    messages.push({ role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'Sunny. [[reply:Sunny in Paris.]]' }] });
    const second = await anthropic.messages.create({ model, max_tokens: 200, tools: anthropicTools, messages });
    assert.equal(second.stop_reason, 'end_turn');
    assert.deepEqual(second.content, [{ type: 'text', text: 'Sunny in Paris.' }]);
  });

  test('streaming: a tool_use block built from input_json_delta', async () => {
    const stream = anthropic.messages.stream({
      model, max_tokens: 200, tools: anthropicTools, messages: [{ role: 'user', content: `Weather? ${weatherCall}` }],
    });
    const partials = [];
    stream.on('inputJson', (partial) => partials.push(partial));
    const final = await stream.finalMessage();
    assert.equal(final.stop_reason, 'tool_use');
    assert.deepEqual(final.content.map((b) => b.type), ['tool_use']);
    assert.deepEqual(final.content[0].input, { city: 'Paris', days: 2 });
    assert.ok(partials.length > 1);
  });
});

describe('exact output', { skip: !testServerBin && 'no hwledger_test_server' }, () => {
  test('stop strings across token boundaries, both APIs', async () => {
    const content = '[[reply:alpha beta gamma delta]]';
    const res = await openai.chat.completions.create({ model, messages: [{ role: 'user', content }], stop: ['mma d'] });
    assert.equal(res.choices[0].message.content, 'alpha beta ga');
    const msg = await anthropic.messages.create({
      model, max_tokens: 50, messages: [{ role: 'user', content }], stop_sequences: ['beta'],
    });
    assert.equal(msg.content[0].text, 'alpha ');
    assert.equal(msg.stop_sequence, 'beta');
  });

  test('32 concurrent streams, each with its own content', async () => {
    const results = await Promise.all(Array.from({ length: 32 }, async (_, i) => {
      const stream = await openai.chat.completions.create({
        model, stream: true, messages: [{ role: 'user', content: `[[token_ms:10]][[reply:This is stream ${i}.]]` }],
      });
      let text = '';
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
      return text;
    }));
    results.forEach((text, i) => assert.equal(text, `This is stream ${i}.`));
  });

  test('aborting a stream cancels the generation', async () => {
    const before = await server.metric('hwledger_client_disconnects_total');
    const stream = await openai.chat.completions.create({
      model, stream: true, messages: [{ role: 'user', content: `[[token_ms:50]][[reply:${'word '.repeat(200)}]]` }],
    });
    let n = 0;
    for await (const chunk of stream) if (chunk.choices[0]?.delta?.content && ++n === 2) break;
    assert.ok(await eventually(async () => (await server.metric('hwledger_client_disconnects_total')) === before + 1));
    assert.ok(await eventually(async () => (await server.metric('hwledger_running_sequences')) === 0));
  });

  test('pings during a long prefill', async () => {
    const res = await fetch(`${server.base}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': API_KEY, 'content-type': 'application/json' },
      body: JSON.stringify({ model, max_tokens: 10, stream: true, messages: [{ role: 'user', content: '[[prefill_ms:2500]][[reply:ok]]' }] }),
    });
    const text = await res.text();
    const beforeText = text.slice(0, text.indexOf('content_block_start'));
    assert.ok((beforeText.match(/event: ping/g) ?? []).length >= 2, beforeText);
  });
});
