// The widget's stylesheet, applied inside its shadow root (the host page's CSS does not
// reach in, and this does not leak out). Hosts theme it with the public `--sb-*`
// custom properties, which do cross the shadow boundary; `all: initial` on :host
// resets every other inherited property, so a page's `font`, `color` or
// `line-height` cannot leak in either.
//
// Default colours meet WCAG AA (4.5:1) for text on its background, in both themes.

export const STYLES = `
:host {
  all: initial;
  --_bg: var(--sb-background, #ffffff);
  --_fg: var(--sb-text, #1f2328);
  --_muted: var(--sb-muted, #57606a);
  --_border: var(--sb-border, #d0d7de);
  --_accent: var(--sb-accent, #0b5cad);
  --_accent-fg: var(--sb-accent-text, #ffffff);
  --_assistant-bg: var(--sb-assistant-bubble, #f1f3f5);
  --_operator-bg: var(--sb-operator-bubble, #fff4d6);
  --_notice-bg: var(--sb-notice-background, #eef4fb);
  --_danger: var(--sb-danger, #b3261e);
  --_focus: var(--sb-focus, #0b5cad);
  --_radius: var(--sb-radius, 12px);
  --_font: var(--sb-font, system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif);
  display: block;
  box-sizing: border-box;
  height: var(--sb-height, 560px);
  width: var(--sb-width, 100%);
}
:host([theme="dark"]) {
  --_bg: var(--sb-background, #16181d);
  --_fg: var(--sb-text, #e6e8eb);
  --_muted: var(--sb-muted, #a4acb6);
  --_border: var(--sb-border, #3a3f47);
  --_accent: var(--sb-accent, #1f5fbf);
  --_accent-fg: var(--sb-accent-text, #ffffff);
  --_assistant-bg: var(--sb-assistant-bubble, #262a31);
  --_operator-bg: var(--sb-operator-bubble, #3b3220);
  --_notice-bg: var(--sb-notice-background, #1e2a3a);
  --_danger: var(--sb-danger, #ff8a80);
  --_focus: var(--sb-focus, #8ab4f8);
}
@media (prefers-color-scheme: dark) {
  :host([theme="auto"]) {
    --_bg: var(--sb-background, #16181d);
    --_fg: var(--sb-text, #e6e8eb);
    --_muted: var(--sb-muted, #a4acb6);
    --_border: var(--sb-border, #3a3f47);
    --_accent: var(--sb-accent, #1f5fbf);
    --_accent-fg: var(--sb-accent-text, #ffffff);
    --_assistant-bg: var(--sb-assistant-bubble, #262a31);
    --_operator-bg: var(--sb-operator-bubble, #3b3220);
    --_notice-bg: var(--sb-notice-background, #1e2a3a);
    --_danger: var(--sb-danger, #ff8a80);
    --_focus: var(--sb-focus, #8ab4f8);
  }
}
:host([layout="launcher"]) {
  position: fixed;
  right: var(--sb-offset-x, 20px);
  bottom: var(--sb-offset-y, 20px);
  z-index: var(--sb-z-index, 2147483000);
  width: auto;
  height: auto;
}
:host([hidden]) { display: none; }
*, *::before, *::after { box-sizing: border-box; }
/* Typography is set here, not inherited from the host element: a page rule that hits
   the host, such as "* { font-size: 40px !important }", would otherwise flow in. */
.panel, .launcher {
  font-family: var(--_font); font-size: var(--sb-font-size, 15px); line-height: 1.45;
  color: var(--_fg); text-align: start; letter-spacing: normal; word-spacing: normal;
  text-transform: none; font-style: normal; font-weight: 400; visibility: visible;
}
[hidden] { display: none !important; }
.visually-hidden {
  position: absolute; width: 1px; height: 1px; margin: -1px; padding: 0; border: 0;
  overflow: hidden; clip: rect(0 0 0 0); clip-path: inset(50%); white-space: nowrap;
}
button, textarea, input { font: inherit; color: inherit; }
:focus-visible { outline: 3px solid var(--_focus); outline-offset: 2px; }

.panel {
  display: flex; flex-direction: column; height: 100%; width: 100%;
  background: var(--_bg); color: var(--_fg);
  border: 1px solid var(--_border); border-radius: var(--_radius); overflow: hidden;
}
:host([layout="launcher"]) .panel {
  position: absolute; right: 0; bottom: 76px;
  width: min(var(--sb-panel-width, 380px), calc(100vw - 32px));
  height: min(var(--sb-panel-height, 600px), calc(100vh - 120px));
  box-shadow: 0 12px 40px rgba(0, 0, 0, 0.22);
}
.launcher {
  width: 60px; height: 60px; border-radius: 50%; border: 0; cursor: pointer;
  background: var(--_accent); color: var(--_accent-fg);
  display: grid; place-items: center; box-shadow: 0 6px 20px rgba(0, 0, 0, 0.25);
}
.launcher svg { width: 28px; height: 28px; fill: currentColor; }

header {
  display: flex; align-items: center; gap: 8px; padding: 12px 14px;
  background: var(--_accent); color: var(--_accent-fg);
}
header h2 { margin: 0; font-size: 1.05em; font-weight: 600; flex: 1; }
.dot { width: 9px; height: 9px; border-radius: 50%; background: #f5c518; flex: none; }
.panel[data-status="online"] .dot { background: #3fd07a; }
.panel[data-status="unauthorized"] .dot, .panel[data-status="offline"] .dot { background: #ff8a80; }
.close {
  background: transparent; border: 0; color: inherit; cursor: pointer;
  font-size: 1.4em; line-height: 1; padding: 2px 8px; border-radius: 6px;
}
.close:focus-visible, .head-btn:focus-visible { outline-color: var(--_accent-fg); }
.head-btn {
  display: grid; place-items: center; width: 32px; height: 32px; padding: 0; flex: none;
  background: transparent; border: 0; border-radius: 6px; color: inherit; cursor: pointer;
}
.head-btn:hover, .head-btn[aria-expanded="true"] { background: rgba(255, 255, 255, 0.18); }
.head-btn svg { width: 20px; height: 20px; fill: none; stroke: currentColor; stroke-width: 2; stroke-linecap: round; }

.banner {
  padding: 6px 14px; font-size: 0.9em; background: #fff4d6; color: #4d3800;
  border-bottom: 1px solid #e8d9a8;
}
.banner[data-kind="error"] { background: #fde7e9; color: #7a1010; border-color: #f3b9bd; }

.log {
  flex: 1; overflow-y: auto; padding: 14px; display: flex; flex-direction: column; gap: 10px;
  overscroll-behavior: contain;
}
.msg { max-width: 88%; padding: 9px 12px; border-radius: var(--_radius); overflow-wrap: anywhere; }
.msg p { margin: 0 0 0.5em; }
.msg p:last-child { margin-bottom: 0; }
.msg ul, .msg ol { margin: 0.3em 0; padding-left: 1.3em; }
.msg pre { background: rgba(127, 127, 127, 0.15); padding: 8px; border-radius: 6px; overflow-x: auto; margin: 0.4em 0; }
.msg code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.9em; }
.msg blockquote { margin: 0.3em 0; padding-left: 10px; border-left: 3px solid var(--_border); }
.msg a { color: inherit; text-decoration: underline; }
.msg[data-role="user"] {
  align-self: flex-end; background: var(--_accent); color: var(--_accent-fg); white-space: pre-wrap;
}
.msg[data-role="assistant"] { align-self: flex-start; background: var(--_assistant-bg); }
.msg[data-role="operator"] { align-self: flex-start; background: var(--_operator-bg); }
.author { display: block; font-size: 0.8em; font-weight: 600; margin-bottom: 2px; }
.meta { display: block; font-size: 0.8em; margin-top: 4px; opacity: 0.95; }
.msg[data-role="user"] .meta { text-align: right; }
.msg[data-state="failed"] { background: var(--_bg); color: var(--_danger); border: 1px solid var(--_danger); }
.msg[data-state="interrupted"] { border: 1px dashed var(--_muted); }
.notice {
  align-self: center; max-width: 92%; font-size: 0.88em; padding: 6px 10px;
  background: var(--_notice-bg); border-radius: 8px; overflow-wrap: anywhere; white-space: pre-wrap;
}
.notice p { margin: 0 0 0.4em; }
.notice p:last-child { margin-bottom: 0; }

.typing-line {
  padding: 0 14px 6px; font-size: 0.85em; color: var(--_muted); font-style: italic;
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis;
}
.notice.presence { background: transparent; color: var(--_muted); padding: 2px 10px; }
.typing { display: inline-flex; gap: 4px; padding: 4px 0; }
.typing span {
  width: 7px; height: 7px; border-radius: 50%; background: var(--_muted);
  animation: sb-blink 1.2s infinite ease-in-out;
}
.typing span:nth-child(2) { animation-delay: 0.2s; }
.typing span:nth-child(3) { animation-delay: 0.4s; }
@keyframes sb-blink { 0%, 80%, 100% { opacity: 0.25; } 40% { opacity: 1; } }
@media (prefers-reduced-motion: reduce) { .typing span { animation: none; opacity: 0.7; } }
.msg[data-state="streaming"] .body.current > p:last-child::after {
  content: "▍"; margin-left: 1px; color: var(--_muted);
}
.turn-note { display: block; margin-top: 6px; font-size: 0.85em; color: var(--_muted); }
.turn-note[data-kind="failed"] { color: var(--_danger); }

.sources { margin-top: 8px; padding-top: 6px; border-top: 1px solid var(--_border); font-size: 0.86em; }
.sources h3 { margin: 0 0 2px; font-size: 1em; font-weight: 600; }
.sources ol { margin: 0; padding-left: 1.3em; }

.body:empty { display: none; }
.tool {
  margin: 4px 0 8px; padding: 8px 10px; border: 1px solid var(--_border); border-radius: 8px;
  background: var(--_bg); font-size: 0.92em;
}
.tool h3 { margin: 0 0 4px; font-size: 1em; font-weight: 600; }
.tool pre { margin: 4px 0; white-space: pre-wrap; }
.tool .actions { display: flex; gap: 8px; margin-top: 6px; }
.tool .state { display: block; margin-top: 4px; color: var(--_muted); }
.btn {
  border-radius: 8px; padding: 6px 14px; cursor: pointer; border: 1px solid var(--_accent);
  background: var(--_accent); color: var(--_accent-fg); font-weight: 600;
}
.btn.secondary { background: var(--_bg); color: var(--_fg); border-color: var(--_border); }
.btn:disabled { opacity: 0.6; cursor: default; }
.btn.danger { background: var(--_danger); border-color: var(--_danger); color: var(--_bg); }

/* The conversation list (signed-in users) takes the place of the log and composer. */
.panel[data-view="conversations"] .log, .panel[data-view="conversations"] form[part="composer"] { display: none; }
.conversations {
  flex: 1; overflow-y: auto; padding: 12px 14px; display: flex; flex-direction: column; gap: 8px;
  overscroll-behavior: contain;
}
.conv-head { display: flex; align-items: baseline; justify-content: space-between; gap: 8px; }
.conversations h3 { margin: 0; font-size: 1em; font-weight: 600; }
.conversations h3:focus { outline: none; }
.conv-status { margin: 0; font-size: 0.88em; color: var(--_muted); }
.conv-status[data-kind="error"] { color: var(--_danger); }
.conv-list { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: 8px; }
.conv { border: 1px solid var(--_border); border-radius: 10px; }
.conv[data-current] { border-color: var(--_accent); box-shadow: inset 4px 0 0 var(--_accent); }
.conv-open {
  display: grid; gap: 1px; width: 100%; padding: 8px 12px 2px; text-align: start;
  background: transparent; border: 0; border-radius: 10px 10px 0 0; cursor: pointer;
}
.conv-open:hover { background: var(--_assistant-bg); }
.conv-title, .conv-preview { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.conv-title { font-weight: 600; }
.conv-preview { font-size: 0.88em; color: var(--_muted); }
.conv-time { font-size: 0.8em; color: var(--_muted); }
.conv-actions { display: flex; gap: 14px; padding: 0 12px 6px; }
.link-btn {
  background: none; border: 0; padding: 2px 0; cursor: pointer; font-size: 0.85em;
  color: var(--_muted); text-decoration: underline;
}
.link-btn:hover { color: var(--_fg); }
.conv-confirm { display: flex; flex-wrap: wrap; align-items: center; gap: 6px; padding: 4px 12px 8px; }
.conv-question { flex-basis: 100%; font-size: 0.9em; }
.conv-rename-form { display: flex; gap: 6px; width: 100%; padding: 0; border: 0; align-items: center; }
.conv-title-input {
  flex: 1; min-width: 0; padding: 6px 8px; border: 1px solid var(--_border); border-radius: 8px;
  background: var(--_bg); color: var(--_fg);
}
.conv-more { align-self: center; }

form { display: flex; gap: 8px; padding: 10px; border-top: 1px solid var(--_border); align-items: flex-end; }
textarea {
  flex: 1; resize: none; min-height: 42px; max-height: 140px; padding: 10px 12px;
  border: 1px solid var(--_border); border-radius: 10px; background: var(--_bg); color: var(--_fg);
}
textarea::placeholder { color: var(--_muted); opacity: 1; }
`;
