// lmforge serve through OpenAI's official Node client: the shapes the client parses (completions,
// streamed chunks, errors, the model list) are the ones OpenAI's API returns. Run by ctest
// (serve_openai_client) when node and tests/serve/node_modules/openai (scripts/setup.sh) are there:
//   LMFORGE_CLI=build/lmforge LMFORGE_TEST_DATA=tests/data node --test tests/serve/openai_client.test.mjs
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import assert from 'node:assert/strict';
import { test, before, after } from 'node:test';
import OpenAI from 'openai';

const cli = process.env.LMFORGE_CLI;
const model = `${process.env.LMFORGE_TEST_DATA}/models/gpt2-tiny`;
let server, client;

before(async () => {
  server = spawn(cli, ['serve', '--model', model, '--port', '0', '--threads', '1', '--api_key', 'sk-test'],
                 { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = await once(createInterface({ input: server.stdout }), 'line');
  const m = line.match(/^lmforge serve: listening on (http:\/\/127\.0\.0\.1:\d+)$/);
  assert.ok(m, `unexpected first line: ${line}`);
  client = new OpenAI({ baseURL: `${m[1]}/v1`, apiKey: 'sk-test', maxRetries: 0 });
});

after(async () => {
  const exited = once(server, 'exit');
  server.kill('SIGTERM');
  const [code] = await exited;
  assert.equal(code, 0);
});

test('completion', async () => {
  const r = await client.completions.create({ model: 'gpt2-tiny', prompt: 'Hello world', max_tokens: 5, temperature: 0, logprobs: 2 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices.length, 1);
  assert.equal(typeof r.choices[0].text, 'string');
  assert.equal(r.choices[0].logprobs.tokens.length, 5);
  assert.equal(r.usage.completion_tokens, 5);
});

test('stream equals the whole text', async () => {
  const body = { model: 'gpt2-tiny', prompt: 'Once upon a time', max_tokens: 8, temperature: 0 };
  const whole = await client.completions.create(body);
  let text = '';
  let finish = null;
  for await (const chunk of await client.completions.create({ ...body, stream: true })) {
    text += chunk.choices[0].text;
    finish = chunk.choices[0].finish_reason ?? finish;
  }
  assert.equal(text, whole.choices[0].text);
  assert.equal(finish, whole.choices[0].finish_reason);
});

test('errors are APIError with status and param', async () => {
  await assert.rejects(client.completions.create({ model: 'gpt2-tiny', prompt: 'a', max_tokens: -1 }),
                       (e) => e instanceof OpenAI.APIError && e.status === 400 && e.param === 'max_tokens');
  await assert.rejects(client.completions.create({ model: 'nope', prompt: 'a' }),
                       (e) => e.status === 404 && e.code === 'model_not_found');
  const bad = new OpenAI({ baseURL: client.baseURL, apiKey: 'wrong', maxRetries: 0 });
  await assert.rejects(bad.completions.create({ model: 'gpt2-tiny', prompt: 'a' }),
                       (e) => e instanceof OpenAI.AuthenticationError && e.code === 'invalid_api_key');
});

test('models list', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.deepEqual(ids, ['gpt2-tiny']);
});
