// The demo console's script (src/api/console.html), a file of its own so the page's CSP can refuse
// inline scripts: a value that ever reached the page as markup could not run as one.
import { HubtierClient } from './client.js';

// every value shown comes from the server: it is written as text, never as HTML
const $ = (id) => document.getElementById(id);
let client = null;
let subscription = null;
let generation = 0;
const at = (pos) => (pos ? pos.epoch + ':' + pos.offset : 'no position');

// the log keeps the newest lines only and is written once a frame: a hub's flood of events had
// grown the tab by hundreds of MB and frozen it (one DOM insert per event, never one removed)
const MAX_LINES = 500;
const unwritten = [];
// control and bidirectional-override characters are shown as escapes: a hub's text with a newline
// or a U+202E could otherwise make a line look like another (a forged event) or read backwards
const HIDDEN = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const visible = (text) => text.replace(HIDDEN, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));

function log(line, kind) {
  const div = document.createElement('div');
  div.textContent = new Date().toISOString().slice(11, 23) + '  ' + visible(line);
  if (kind) div.className = kind;
  if (unwritten.push(div) === 1) requestAnimationFrame(writeLog);
}

function writeLog() {
  const box = $('events');
  const fresh = unwritten.splice(0).slice(-MAX_LINES).reverse(); // newest first
  box.prepend(...fresh);
  while (box.childElementCount > MAX_LINES) box.lastElementChild.remove();
}

function showState(s) {
  let text = s.state;
  if (s.state === 'connecting' && s.attempt > 0) text += ' (attempt ' + (s.attempt + 1) + ')';
  if (s.state === 'closed') {
    text += ' ' + s.code + (s.reason ? ' ' + s.reason : '') + (s.unauthorized ? ' (token refused)' : '');
    text += s.reconnectInMs === null ? '' : ', reconnecting in ' + s.reconnectInMs + ' ms';
  }
  $('status').textContent = visible(text);
  log('connection ' + text, s.state === 'closed' ? 'err' : 'note');
}

// the old client is let go at once, its close not awaited: a second click meanwhile had made a
// client no button could close any more (and it kept reading the token field)
function disconnect() {
  const old = client;
  client = null;
  subscription = null;
  generation++; // what the old client still reports is not shown
  $('sub').textContent = 'none';
  $('pos').textContent = 'none';
  if (!old) return;
  void old.close();
  $('status').textContent = 'disconnected';
  log('connection closed by the client', 'note');
}

$('connect').onclick = () => {
  disconnect();
  const home = $('home').value.trim();
  const origin = location.origin.replace(/^http/, 'ws');
  // read at every attempt: a token pasted after a refusal is used on the next reconnect
  const mine = generation;
  client = new HubtierClient({ url: origin, token: () => $('token').value.trim(), onState: (s) => generation === mine && showState(s) });
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
      $('sub').textContent = visible(home + ': ' + text);
      log(text, 'note');
    },
    onError: (err) => {
      $('sub').textContent = 'refused: ' + visible(err.code);
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
    $('result').textContent = 'ok ' + visible(JSON.stringify(result));
    log('command ' + hub + '/' + device + ' → ' + JSON.stringify(result), 'note');
  } catch (err) {
    const text = err.code + (err.temporary ? ' (temporary)' : '') + ': ' + err.message + (err.hubCode ? ' [hub: ' + err.hubCode + ']' : '');
    // the hub's own code and message, as the log shows them (review "unicode")
    $('result').textContent = 'error ' + visible(text);
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
