package ui

import (
	"fmt"

	"github.com/maxence-charriere/go-app/v10/pkg/app"
)

// A Go panic in the browser ends the whole program, and the page then keeps showing whatever it showed
// last ("saved", "connected") while nothing works or saves any more. Two guards make that state visible:
// guard recovers in the editor's own DOM listeners, and the watchdog (plain JavaScript, so it still runs
// when Go is gone) catches what escapes anywhere else, go-app's handlers and renders included. Both end
// in the same "error: reload" state.

const fatalText = "error: reload"

// guard runs one event handler and turns a panic into the page's fatal state instead of the end of the
// program.
func (s *Studio) guard(what string, f func()) {
	defer func() {
		if r := recover(); r != nil {
			s.crash(fmt.Sprintf("%s: %v", what, r))
		}
	}()
	f()
}

// crash puts the page in the fatal state. After a panic the editor's state may be half updated, so it
// stops taking edits and saves nothing more: a reload reads back what the server has.
func (s *Studio) crash(msg string) {
	if s.fatal != "" {
		return
	}
	s.fatal = msg
	if s.ed != nil {
		s.ed.stroking, s.ed.panning = false, false
	}
	if s.mounted {
		s.mctx.Dispatch(nil)
	}
}

// watchdogJS marks the page when the Go program dies: the runtime prints "panic:" or "fatal error:" on
// standard error (wasm_exec.js routes it through globalThis.fs.writeSync) and every later event then
// throws "Go program has already exited". It only touches elements the UI always renders.
const watchdogJS = `
if (window.rdreFatal) return;
const show = why => {
  if (window.rdreDead) return;
  window.rdreDead = String(why).slice(0, 300);
  setTimeout(() => {
    let b = document.querySelector('[data-testid=fatal-error]');
    if (!b) { b = document.createElement('div'); b.dataset.testid = 'fatal-error'; document.body.prepend(b); }
    b.className = 'fatal-bar'; b.hidden = false; b.textContent = '';
    const m = document.createElement('span');
    m.textContent = '` + fatalText + ` — the page stopped working (' + window.rdreDead + '). What was saved before is on the server; later changes are not saved.';
    const r = document.createElement('button'); r.textContent = 'Reload'; r.onclick = () => location.reload();
    b.append(m, r);
    document.querySelectorAll('[data-testid=save-status]').forEach(e => { e.textContent = '` + fatalText + `'; e.className = 'save-status failed'; });
    document.querySelectorAll('[data-testid=connection]').forEach(e => { e.textContent = 'error'; e.className = 'conn offline'; });
  }, 0);
};
window.rdreFatal = show;
const fs = globalThis.fs;
if (fs && fs.writeSync) {
  const write = fs.writeSync.bind(fs), dec = new TextDecoder();
  let err = '';
  fs.writeSync = (fd, buf) => {
    if (fd === 2) {
      err = (err + dec.decode(buf)).slice(-4000);
      const m = err.match(/(?:^|\n)((?:panic|fatal error): [^\n]*)\n/);
      if (m) show(m[1]);
    }
    return write(fd, buf);
  };
}
addEventListener('error', e => { if (String(e.message).includes('Go program has already exited')) show('the program exited'); });
`

// installWatchdog installs watchdogJS once per page.
func installWatchdog() {
	app.Window().Get("Function").New(watchdogJS).Invoke()
}

// renderFatal is the bar the watchdog fills; rendered always (hidden) so that it never moves the view.
func (s *Studio) renderFatal() app.UI {
	return app.Div().Class("fatal-bar").Attr("data-testid", "fatal-error").Hidden(s.fatal == "").Body(
		app.Span().Text(fatalText+" — the page stopped working ("+s.fatal+"). What was saved before is on the server; later changes are not saved."),
		app.Button().Text("Reload").OnClick(func(ctx app.Context, e app.Event) { ctx.Reload() }),
	)
}
