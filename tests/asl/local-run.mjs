// Runs a state machine (statemachine/migration.asl.json, or cleanup.asl.json after an
// execution ended ABORTED, FAILED or TIMED_OUT) with aws-local-stepfunctions for
// `ngm local run`.
//
// Settings come as one JSON object on stdin (see tests/local/src/interp.rs). Every line this
// script prints on stdout is one JSON object: `ready` (with the Step Functions callback
// endpoint), `event` (the interpreter's event log), `taskToken` (a waitForTaskToken state is
// waiting), then one `result` whose status is SUCCEEDED, FAILED, ABORTED or TIMED_OUT, as
// Step Functions reports an execution's. Diagnostics go to stderr.
//
// As Step Functions does, the execution ends TIMED_OUT when the definition's `TimeoutSeconds`
// (or `timeoutSeconds` from the settings, simulated seconds) have passed on the twin's clock,
// and ABORTED when it is stopped (`stop`: at the `visit`-th entry into state `atState`, the
// console's "Stop execution"); a Lambda invocation in flight then runs on to its end in the
// Lambda host, its result unused.
//
// Tasks are not run here: each Lambda Task posts its input to the Lambda host's Invoke API, as
// Step Functions would, and a function error is rethrown under its `errorType`, the name the
// ASL's Retry and Catch match. Waits and retry intervals are divided by the twin's speed.

import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { StateMachine } from 'aws-local-stepfunctions';

const emit = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);

function readStdin() {
  return readFileSync(0, 'utf8');
}

// `$.a.b` only: the ASL's SecondsPath values are plain member paths.
function memberPath(path, value) {
  if (path === '$') return value;
  return path.replace(/^\$\./, '').split('.').reduce((v, k) => (v == null ? undefined : v[k]), value);
}

function namedError(name, message) {
  const e = new Error(message);
  e.name = name;
  return e;
}

const settings = JSON.parse(readStdin());
const raw = readFileSync(settings.definition, 'utf8');
const definition = JSON.parse(
  raw.replace(/\$\{(\w+)\}/g, (whole, key) => {
    if (!(key in settings.substitutions)) {
      throw new Error(`no substitution for ${whole}`);
    }
    return settings.substitutions[key];
  }),
);
const speed = settings.speed > 0 ? settings.speed : 1;
const states = definition.States;
// The execution timeout is timed here, on the twin's clock, not by the library's wall timer.
const timeoutSeconds = settings.timeoutSeconds ?? definition.TimeoutSeconds;
delete definition.TimeoutSeconds;

// The last state output: a Wait's input is the output of the Task (and Choice) before it.
let lastOutput = settings.input;

async function invoke(functionArn, input) {
  const url = `${settings.invokeUrl}/2015-03-31/functions/${encodeURIComponent(functionArn)}/invocations`;
  let response;
  try {
    response = await fetch(url, { method: 'POST', body: JSON.stringify(input) });
  } catch (e) {
    throw namedError('Lambda.SdkClientException', `invoke ${functionArn}: ${e.message}`);
  }
  const body = await response.text();
  if (response.status === 429) {
    throw namedError('Lambda.TooManyRequestsException', body);
  }
  if (response.status >= 500) {
    throw namedError('Lambda.ServiceException', body);
  }
  if (response.status !== 200) {
    throw namedError('Lambda.AWSLambdaException', `${response.status}: ${body}`);
  }
  if (response.headers.get('x-amz-function-error')) {
    let err = {};
    try {
      err = JSON.parse(body);
    } catch {
      err = { errorType: 'Lambda.Unknown', errorMessage: body };
    }
    throw namedError(err.errorType ?? 'Lambda.Unknown', err.errorMessage ?? body);
  }
  const output = body.length ? JSON.parse(body) : null;
  lastOutput = output;
  return output;
}

// Task tokens handed out and not answered yet: token -> {resolve, reject}.
const waiting = new Map();
let tokenSeq = 0;

// The Step Functions callback API (awsJson1_0), enough for SendTaskSuccess/SendTaskFailure.
const sfn = createServer((req, res) => {
  let data = '';
  req.on('data', (c) => (data += c));
  req.on('end', () => {
    const target = (req.headers['x-amz-target'] ?? '').replace('AWSStepFunctions.', '');
    const reply = (code, obj) => {
      res.writeHead(code, { 'content-type': 'application/x-amz-json-1.0' });
      res.end(JSON.stringify(obj));
    };
    let body = {};
    try {
      body = JSON.parse(data || '{}');
    } catch {
      return reply(400, { __type: 'SerializationException', message: 'body is not JSON' });
    }
    const pending = waiting.get(body.taskToken);
    if (target !== 'SendTaskSuccess' && target !== 'SendTaskFailure') {
      return reply(400, { __type: 'UnknownOperationException', message: `${target} is not served locally` });
    }
    if (!pending) {
      return reply(400, { __type: 'TaskDoesNotExist', message: 'Task does not exist anymore' });
    }
    waiting.delete(body.taskToken);
    if (target === 'SendTaskSuccess') {
      pending.resolve(JSON.parse(body.output ?? 'null'));
    } else {
      pending.reject(namedError(body.error ?? 'States.TaskFailed', body.cause ?? ''));
    }
    emit({ kind: 'taskAnswered', token: body.taskToken, answer: target });
    return reply(200, {});
  });
});
await new Promise((resolve) => sfn.listen(0, '127.0.0.1', resolve));

const handlers = {};
const retryIntervals = {};
for (const [name, state] of Object.entries(states)) {
  if (state.Type !== 'Task') continue;
  if (String(state.Resource).endsWith('.waitForTaskToken')) {
    handlers[name] = (input) =>
      new Promise((resolve, reject) => {
        tokenSeq += 1;
        const token = `${settings.execution.name}-${name}-${tokenSeq}`;
        waiting.set(token, { resolve, reject });
        const entry = input?.Entries?.[0] ?? {};
        emit({ kind: 'taskToken', state: name, token, detail: { ...entry.Detail, taskToken: token } });
      });
  } else {
    handlers[name] = (input) => invoke(state.Resource, input);
  }
  if (Array.isArray(state.Retry)) {
    retryIntervals[name] = state.Retry.map((r) => Math.max(10, ((r.IntervalSeconds ?? 1) * 1000) / speed));
  }
}

const waitTimes = new Proxy(
  {},
  {
    get(_, name) {
      const state = states[name];
      if (!state || state.Type !== 'Wait') return undefined;
      const seconds = state.Seconds ?? memberPath(state.SecondsPath, lastOutput);
      if (typeof seconds !== 'number' || seconds < 0) {
        throw namedError('States.Runtime', `${name}: ${state.SecondsPath} is not a non-negative number`);
      }
      return (seconds * 1000) / speed;
    },
  },
);

const machine = new StateMachine(definition, { validationOptions: { checkArn: true, checkPaths: true } });
const execution = machine.run(settings.input, {
  overrides: {
    taskResourceLocalHandlers: handlers,
    waitTimeOverrides: waitTimes,
    retryIntervalOverrides: retryIntervals,
  },
  context: {
    Execution: { Id: settings.execution.arn, Name: settings.execution.name },
    // Every AwaitOperator entry gets its own token (above); this one only satisfies the path.
    Task: { Token: `${settings.execution.name}-token` },
  },
});

emit({ kind: 'ready', sfnEndpoint: `http://127.0.0.1:${sfn.address().port}` });

// Why the execution was ended from outside, if it was: 'ABORTED' or 'TIMED_OUT'.
let endedBy = null;
const end = (status) => {
  if (endedBy) return;
  endedBy = status;
  execution.abort();
};
let timer = null;
if (typeof timeoutSeconds === 'number' && timeoutSeconds > 0) {
  timer = setTimeout(() => end('TIMED_OUT'), (timeoutSeconds * 1000) / speed);
}
const entries = new Map();
// The pre-flight report, given once: the first state output that carries it (what an operator
// reads in the execution history when the execution itself fails).
let preflightSent = false;

const forward = (async () => {
  for await (const ev of execution.eventLogs) {
    if (ev.type === 'StateEntered' && settings.stop && ev.state?.name === settings.stop.atState) {
      const n = (entries.get(ev.state.name) ?? 0) + 1;
      entries.set(ev.state.name, n);
      // Stopped once the state is running (its Task invoked), as an operator would see it.
      if (n === (settings.stop.visit ?? 1)) setTimeout(() => end('ABORTED'), 0);
    }
    const preflight = ev.type === 'StateExited' && !preflightSent ? ev.state?.output?.preflight : undefined;
    if (preflight) preflightSent = true;
    emit({
      kind: 'event',
      type: ev.type,
      at: ev.timestamp,
      state: ev.state?.name,
      stateType: ev.state?.type,
      error: ev.Error,
      cause: ev.Cause,
      attempt: ev.retry?.attempt,
      preflight,
    });
  }
})();

try {
  const output = await execution.result;
  await forward;
  emit({ kind: 'result', status: 'SUCCEEDED', output });
} catch (e) {
  await forward.catch(() => {});
  if (endedBy === 'TIMED_OUT') {
    emit({ kind: 'result', status: 'TIMED_OUT', error: 'States.Timeout', cause: `the execution ran past its TimeoutSeconds (${timeoutSeconds} s)` });
  } else if (endedBy === 'ABORTED') {
    emit({ kind: 'result', status: 'ABORTED', error: null, cause: `stopped in ${settings.stop.atState} (visit ${settings.stop.visit ?? 1})` });
  } else {
    const inner = e.cause instanceof Error ? e.cause : e;
    emit({ kind: 'result', status: 'FAILED', error: inner.name, cause: inner.cause ?? inner.message });
  }
} finally {
  clearTimeout(timer);
  sfn.close();
}
process.exit(0);
