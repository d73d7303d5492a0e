// The demo console's script (src/api/console.html), a file of its own so the page's CSP can refuse
// inline scripts: a value that ever reached the page as markup could not run as one.
import { HubtierClient } from './client.js';

// every value shown comes from the server: it is written as text, never as HTML
const $ = (id) => document.getElementById(id);
let client = null;
let subscription = null;
const at = (pos) => (pos ? pos.epoch + ':' + pos.offset : 'no position');

function log(line, kind) {
  const div = document.createElement('div');
  div.textContent = new Date().toISOString().slice(11, 23) + '  ' + line;
  if (kind) div.className = kind;
  $('events').prepend(div);
}

function showState(s) {
  let text = s.state;
  if (s.state === 'connecting' && s.attempt > 0) text += ' (attempt ' + (s.attempt + 1) + ')';
  if (s.state === 'closed') {
    text += ' ' + s.code + (s.reason ? ' ' + s.reason : '') + (s.unauthorized ? ' (token refused)' : '');
    text += s.reconnectInMs === null ? '' : ', reconnecting in ' + s.reconnectInMs + ' ms';
  }
  $('status').textContent = text;
  log('connection ' + text, s.state === 'closed' ? 'err' : 'note');
}

async function disconnect() {
  if (!client) return;
  const old = client;
  client = null;
  subscription = null;
  await old.close();
  $('sub').textContent = 'none';
  $('pos').textContent = 'none';
}

$('connect').onclick = async () => {
  await disconnect();
  const home = $('home').value.trim();
  const origin = location.origin.replace(/^http/, 'ws');
  // read at every attempt: a token pasted after a refusal is used on the next reconnect
  client = new HubtierClient({ url: origin, token: () => $('token').value.trim(), onState: showState });
  subscription = client.subscribe(home, {
    onEvent: (evt) => {
      log(JSON.stringify(evt));
      if (evt.pos) $('pos').textContent = at(evt.pos);
    },
    onSubscribed: (r) => {
      let text = home + ' from ' + at(r.pos);
      if (r.recovered === true) text += ', recovered: the events missed follow';
      $('sub').textContent = text;
      log('subscribed: ' + text, 'note');
    },
    onReload: (info) => {
      // a real app reloads the home's state here (GET /v1/hubs/…/shadow), then carries on
      const text = 'reload the home (' + info.reason + '), events go on from ' + at(info.pos);
      $('sub').textContent = home + ': ' + text;
      log(text, 'note');
    },
    onError: (err) => {
      $('sub').textContent = 'refused: ' + err.code;
      log('subscription refused: ' + err.code + ' ' + err.message, 'err');
    },
  });
};
$('disconnect').onclick = () => disconnect();

$('send').onclick = async () => {
  if (!client) return log('not connected', 'err');
  let set;
  try { set = JSON.parse($('set').value); } catch { return log('set is not JSON', 'err'); }
  const hub = $('hub').value.trim();
  const device = $('device').value.trim();
  $('result').textContent = 'waiting for ' + hub + '/' + device;
  try {
    const result = await client.command(hub, device, { set });
    $('result').textContent = 'ok ' + JSON.stringify(result);
    log('command ' + hub + '/' + device + ' → ' + JSON.stringify(result), 'note');
  } catch (err) {
    const text = err.code + (err.temporary ? ' (temporary)' : '') + ': ' + err.message + (err.hubCode ? ' [hub: ' + err.hubCode + ']' : '');
    $('result').textContent = 'error ' + text;
    log('command ' + hub + '/' + device + ' failed: ' + text, 'err');
  }
};

// #token=...&home=... prefills the fields (a fragment never reaches the server or its logs) and is
// then dropped from the address bar. It does not connect: a link's author does not choose what
// the console connects with before the user looks
const preset = new URLSearchParams(location.hash.slice(1));
if (preset.get('token')) {
  $('token').value = preset.get('token');
  if (preset.get('home')) $('home').value = preset.get('home');
  history.replaceState(null, '', location.pathname + location.search);
}
