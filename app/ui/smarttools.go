package ui

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/rdre-studio/studio/shared/regions"
)

// The smart tools of issue 13: magic wand, superpixel brush, refine with + / − clicks, and editable
// polygons. All of them work offline on the image the editor already shows: its pixels are read once
// from the <img> through a canvas, and the superpixels are computed in the browser in a goroutine that
// yields to the page (measured: a few hundred ms per 1024x1024 image, once, against a round trip and a
// second decode of the image on the server).

const (
	toolWand       = "wand"
	toolSuperpixel = "superpixel"
	toolRefine     = "refine"
)

// smartSession is the smart tools' state for the open image. It lives outside editorState (one per
// page: only one image is open at a time) and is reset when another image opens.
type smartSession struct {
	ed *editorState

	img    *regions.RGBA
	filler regions.Filler
	spans  []regions.Span

	sp       *regions.Superpixels
	spState  string // "", spComputing, spReady, spFailed
	spErr    string
	spMs     float64
	spKs     []int32
	spStamp  []uint32 // spStamp[k] == spGen: superpixel k is painted by the open stroke
	spGen    uint32
	spStroke bool

	// The wand's last plain click, which the next plain click or a tolerance change replaces while it
	// is still the newest edit.
	wandEdit *uint8
	wandSeed [2]int

	// A polygon vertex being dragged (-1: none).
	dragV     int
	dragMoved bool
	dragClose bool // pressed on the first vertex: a release without moving closes the polygon
	dragAlt   bool
	dragX     float64
	dragY     float64
}

const (
	spComputing = "computing"
	spReady     = "ready"
	spFailed    = "failed"
)

var (
	smart = &smartSession{dragV: -1}
	// wandTol carries over from image to image, like the brush size.
	wandTol = 16
	// spStep is the superpixel width asked for (0: regions.DefaultStep, about 4096 per image); fine
	// superpixels follow a crack one or two pixels wide, which the default paints as a 16 px blob.
	spStep = 0
)

// spCache keeps the superpixels of the last images labelled, so that going back to an image (Prev, then
// Next) does not compute them again (about 1.5 s at 1024x1024). Each entry costs 4 bytes a pixel.
var spCache []spCached

const spCacheSize = 4

type spCached struct {
	key string // dataset, image, size and step
	sp  *regions.Superpixels
	ms  float64
}

func spKey(ed *editorState, step int) string {
	return fmt.Sprintf("%s\x00%s\x00%dx%d\x00%d", ed.dataset, ed.image, ed.w, ed.h, step)
}

func spLookup(key string) (spCached, bool) {
	for i, c := range spCache {
		if c.key == key {
			// Most recently used last.
			spCache = append(append(spCache[:i:i], spCache[i+1:]...), c)
			return c, true
		}
	}
	return spCached{}, false
}

func spStore(c spCached) {
	if len(spCache) >= spCacheSize {
		spCache = append(spCache[:0:0], spCache[len(spCache)-spCacheSize+1:]...)
	}
	spCache = append(spCache, c)
}

// spSteps are the choices of the superpixel size select.
var spSteps = []struct {
	step  int
	label string
}{{0, "auto (about 4096)"}, {6, "fine (6 px)"}, {10, "medium (10 px)"}, {24, "coarse (24 px)"}}

// setSuperpixelStep changes the superpixel size and recomputes this image's superpixels with it.
func (s *Studio) setSuperpixelStep(ed *editorState, step int) {
	if step == spStep {
		return
	}
	spStep = step
	if !ed.ready() {
		return
	}
	sm := s.session(ed)
	if sm.spState == spComputing {
		return // the select is disabled meanwhile; a late event changes only the next computation
	}
	sm.sp, sm.spState, sm.spErr = nil, "", ""
	s.startSuperpixels(ed)
}

// session returns the smart state of ed, starting a fresh one for a newly opened image.
func (s *Studio) session(ed *editorState) *smartSession {
	if smart.ed != ed {
		smart = &smartSession{ed: ed, dragV: -1}
	}
	return smart
}

var errImageLoading = errors.New("the image is still loading: try again in a moment")

// pixels reads the shown image's pixels once. The image is same-origin, so the canvas is not tainted.
func (sm *smartSession) pixels() (*regions.RGBA, error) {
	if sm.img != nil {
		return sm.img, nil
	}
	ed := sm.ed
	el := app.Window().GetElementByID("editor-image")
	if !el.Truthy() || !el.Get("complete").Bool() || el.Get("naturalWidth").Int() == 0 {
		return nil, errImageLoading
	}
	if w, h := el.Get("naturalWidth").Int(), el.Get("naturalHeight").Int(); w != ed.w || h != ed.h {
		return nil, fmt.Errorf("reading image pixels: the image is %dx%d, the mask %dx%d", w, h, ed.w, ed.h)
	}
	c := app.Window().Get("document").Call("createElement", "canvas")
	c.Set("width", ed.w)
	c.Set("height", ed.h)
	cx := c.Call("getContext", "2d", map[string]any{"willReadFrequently": true})
	cx.Call("drawImage", el, 0, 0)
	data := cx.Call("getImageData", 0, 0, ed.w, ed.h).Get("data")
	buf := make([]byte, ed.w*ed.h*4)
	if n := app.CopyBytesToGo(buf, data); n != len(buf) {
		return nil, fmt.Errorf("reading image pixels: got %d bytes, want %d", n, len(buf))
	}
	img, err := regions.NewRGBA(ed.w, ed.h, buf)
	if err != nil {
		return nil, fmt.Errorf("reading image pixels: %w", err)
	}
	sm.img = img
	return img, nil
}

// startSuperpixels computes the image's superpixels once, in a goroutine that sleeps every few
// milliseconds of work: wasm has one thread, and only a blocked goroutine lets the page paint and take
// input.
func (s *Studio) startSuperpixels(ed *editorState) {
	sm := s.session(ed)
	if sm.spState == spComputing || sm.spState == spReady {
		return
	}
	step := spStep
	key := spKey(ed, step)
	if c, ok := spLookup(key); ok {
		sm.sp, sm.spState, sm.spMs = c.sp, spReady, c.ms
		sm.spStamp = make([]uint32, c.sp.N)
		return
	}
	img, err := sm.pixels()
	if err != nil {
		if !errors.Is(err, errImageLoading) {
			sm.spState, sm.spErr = spFailed, err.Error()
		}
		return
	}
	sm.spState, sm.spErr = spComputing, ""
	s.mctx.Async(func() {
		// A test hook: browser tests hold the computation back to see the tools before it is done.
		if d := app.Window().Get("rdreSlicDelayMs"); d.Type() == app.TypeNumber {
			time.Sleep(time.Duration(d.Float()) * time.Millisecond)
		}
		perf := app.Window().Get("performance")
		t0 := perf.Call("now").Float()
		sp, err := regions.SLIC(img, regions.SLICOptions{Step: step, Yield: func() { time.Sleep(time.Millisecond) }})
		ms := perf.Call("now").Float() - t0
		if err == nil {
			// Kept even when the labeller has moved on: coming back is the case the cache is for.
			s.mctx.Dispatch(func(app.Context) { spStore(spCached{key: key, sp: sp, ms: ms}) })
		}
		s.mctx.Dispatch(func(app.Context) {
			if smart != sm {
				return
			}
			if err != nil {
				sm.spState, sm.spErr = spFailed, fmt.Sprintf("computing superpixels: %v", err)
				return
			}
			sm.sp, sm.spState, sm.spMs = sp, spReady, ms
			sm.spStamp = make([]uint32, sp.N)
			pushSample("rdreSlicMs", ms)
			if ed.toolMsg == msgSuperpixelsPending {
				ed.toolMsg = ""
			}
		})
	})
}

const msgSuperpixelsPending = "the superpixels of this image are still being computed: try again in a moment"

// setToolMsg shows why a tool did nothing (or clears it) without a render when it is unchanged.
func (s *Studio) setToolMsg(ed *editorState, msg string) {
	if msg != ed.toolMsg {
		s.mctx.Dispatch(func(app.Context) { ed.toolMsg = msg })
	}
}

func now() float64 { return app.Window().Get("performance").Call("now").Float() }

// selectTool switches tools; the smart ones start their preparation right away.
func (s *Studio) selectTool(ed *editorState, id string) {
	ed.tool = id
	if id != toolPolygon {
		ed.poly = nil
		ed.drawPreview()
	}
	if id == toolSuperpixel || id == toolRefine {
		s.startSuperpixels(ed)
	}
	if id == toolWand && ed.ready() {
		// Reading the pixels costs tens of ms at 1024x1024: pay it on the tool switch, not the first click.
		_, _ = s.session(ed).pixels()
	}
}

// smartPointerDown handles the presses of the smart tools, the polygon's vertex editing and the
// right-button or Alt erasing of the brush; false leaves the event to the editor's own handler.
func (s *Studio) smartPointerDown(e app.Value) bool {
	if !s.editing(e) {
		return false
	}
	ed := s.ed
	btn := e.Get("button").Int()
	alt := e.Get("altKey").Bool()
	if btn == 1 || ed.spaceDown || (btn != 0 && btn != 2) {
		return false
	}
	sm := s.session(ed)
	p := ed.toImage(e)
	switch ed.tool {
	case toolBrush, toolEraser:
		if btn != 2 && !alt {
			return false
		}
		// Right drag or Alt drag erases, whatever the brush's class.
		e.Call("preventDefault")
		ed.stroking = true
		ed.strokeValue = 0
		ed.vp.Call("setPointerCapture", e.Get("pointerId"))
		ed.paint(ed.ed.BeginStroke(p.X, p.Y, ed.size, 0))
		return true
	case toolWand:
		e.Call("preventDefault")
		t0 := now()
		s.wandClick(ed, sm, p, e.Get("shiftKey").Bool(), alt || btn == 2)
		pushSample("rdreSmartWand", now()-t0)
		return true
	case toolSuperpixel:
		e.Call("preventDefault")
		if sm.spState != spReady {
			s.startSuperpixels(ed)
			s.setToolMsg(ed, s.superpixelWait(sm))
			return true
		}
		s.setToolMsg(ed, "")
		ed.stroking, sm.spStroke = true, true
		ed.strokeValue = uint8(ed.cls)
		if alt || btn == 2 {
			ed.strokeValue = 0
		}
		sm.spGen++
		if sm.spGen == 0 {
			clear(sm.spStamp)
			sm.spGen = 1
		}
		ed.vp.Call("setPointerCapture", e.Get("pointerId"))
		t0 := now()
		s.superpixelDab(ed, sm, []Point{p})
		pushSample("rdreSmartSuperpixel", now()-t0)
		return true
	case toolRefine:
		e.Call("preventDefault")
		t0 := now()
		s.refineClick(ed, sm, p, alt || btn == 2)
		pushSample("rdreSmartRefine", now()-t0)
		return true
	case toolPolygon:
		if btn != 0 {
			return false
		}
		return s.polygonPress(e, ed, sm, p, alt)
	}
	return false
}

func (s *Studio) superpixelWait(sm *smartSession) string {
	if sm.spState == spFailed {
		return sm.spErr
	}
	if sm.img == nil {
		return errImageLoading.Error()
	}
	return msgSuperpixelsPending
}

// wandClick grows the region at p with the current tolerance. A plain click replaces the region of the
// previous plain click while that is still the newest edit (trying seeds does not pile up), Shift adds
// a region, Alt (or the right button) removes one from the mask.
func (s *Studio) wandClick(ed *editorState, sm *smartSession, p Point, add, subtract bool) {
	x, y := int(math.Floor(p.X)), int(math.Floor(p.Y))
	if x < 0 || y < 0 || x >= ed.w || y >= ed.h {
		s.setToolMsg(ed, "the wand needs a click on the image")
		return
	}
	img, err := sm.pixels()
	if err != nil {
		s.setToolMsg(ed, err.Error())
		return
	}
	s.setToolMsg(ed, "")
	sm.spans, err = sm.filler.Grow(img, x, y, wandTol, sm.spans[:0])
	if err != nil {
		s.setToolMsg(ed, err.Error())
		return
	}
	var r Rect
	value := uint8(ed.cls)
	if subtract {
		value = 0
	}
	if !add && !subtract && sm.wandEdit != nil && ed.ed.topEdit() == sm.wandEdit {
		r, _ = ed.ed.dropTop()
	}
	applied := ed.ed.ApplySpans(sm.spans, value)
	r = r.Union(applied)
	sm.wandEdit = nil
	if !add && !subtract && !applied.Empty() {
		sm.wandEdit, sm.wandSeed = ed.ed.topEdit(), [2]int{x, y}
	}
	if !r.Empty() {
		ed.paint(r)
		s.changed()
	}
	// Say how much the wand took: a region that leaks along an edge outside the zoomed view is
	// otherwise invisible until the mask is checked.
	n := regions.Count(sm.spans)
	x0, y0, x1, y1 := regions.Bounds(sm.spans)
	msg := fmt.Sprintf("wand: %d px (%.1f %% of the image), %d x %d px box", n, 100*float64(n)/float64(ed.w*ed.h), x1-x0, y1-y0)
	if float64(n) > 0.1*float64(ed.w*ed.h) {
		msg += ": a large region, press 0 to see the whole image"
	}
	s.setToolMsg(ed, msg)
}

// setWandTolerance changes the tolerance and regrows the last plain click's region with it, so the
// slider previews the selection live.
func (s *Studio) setWandTolerance(ed *editorState, tol int) {
	wandTol = tol
	if !ed.ready() {
		return
	}
	sm := s.session(ed)
	if sm.wandEdit == nil || ed.ed.topEdit() != sm.wandEdit {
		return
	}
	t0 := now()
	s.wandClick(ed, sm, Point{float64(sm.wandSeed[0]) + 0.5, float64(sm.wandSeed[1]) + 0.5}, false, false)
	pushSample("rdreSmartWand", now()-t0)
}

// superpixelDab paints (or erases) every superpixel under the brush at the points, each once per stroke.
func (s *Studio) superpixelDab(ed *editorState, sm *smartSession, pts []Point) {
	sm.spKs = sm.spKs[:0]
	for _, p := range pts {
		sm.spKs = sm.sp.UnderDisc(p.X, p.Y, ed.size, sm.spKs)
	}
	sm.spans = sm.spans[:0]
	for _, k := range sm.spKs {
		if sm.spStamp[k] == sm.spGen {
			continue
		}
		sm.spStamp[k] = sm.spGen
		sm.spans = sm.sp.Spans(k, sm.spans)
	}
	if len(sm.spans) > 0 {
		ed.paint(ed.ed.StrokeSpans(sm.spans, ed.strokeValue))
	}
	if len(pts) > 0 {
		s.brushOutline(ed, pts[len(pts)-1])
	}
}

// brushOutline draws the brush circle for the superpixel brush, which paints under the same disc.
func (s *Studio) brushOutline(ed *editorState, p Point) {
	t := ed.tool
	ed.tool = toolBrush
	ed.drawCursor(p)
	ed.tool = t
}

// refineClick is the + / − refinement of a drafted mask: a click adds the superpixel under the pointer
// in the current class; Alt+click (or a right click) removes the whole connected piece of the mask
// under the pointer (8-connected, one class), the quick way to drop a false blob of a draft.
func (s *Studio) refineClick(ed *editorState, sm *smartSession, p Point, minus bool) {
	x, y := int(math.Floor(p.X)), int(math.Floor(p.Y))
	if x < 0 || y < 0 || x >= ed.w || y >= ed.h {
		return
	}
	var r Rect
	if minus {
		if ed.ed.Pix[y*ed.w+x] == 0 {
			s.setToolMsg(ed, "nothing to remove here: Alt+click a labelled area to remove its connected piece")
			return
		}
		var err error
		sm.spans, err = sm.filler.Component(ed.ed.Pix, ed.w, ed.h, x, y, sm.spans[:0])
		if err != nil {
			s.setToolMsg(ed, fmt.Sprintf("refine: %v", err))
			return
		}
		r = ed.ed.ApplySpans(sm.spans, 0)
	} else {
		if sm.spState != spReady {
			s.startSuperpixels(ed)
			s.setToolMsg(ed, s.superpixelWait(sm))
			return
		}
		sm.spans = sm.sp.Spans(sm.sp.At(x, y), sm.spans[:0])
		r = ed.ed.ApplySpans(sm.spans, uint8(ed.cls))
	}
	s.setToolMsg(ed, "")
	if !r.Empty() {
		ed.paint(r)
		s.changed()
	}
}

// polygonPress edits the polygon being drawn: a press on a vertex drags it, a press on an edge inserts
// a vertex there and drags it, Alt+click on the first vertex closes the polygon as a subtraction.
// Anything else is left to the editor (a new vertex, or closing on the first one).
func (s *Studio) polygonPress(e app.Value, ed *editorState, sm *smartSession, p Point, alt bool) bool {
	if len(ed.poly) == 0 {
		return false
	}
	near := 8 / math.Max(ed.zoom, 0.01) // 8 screen pixels in image units
	hit, best := -1, near
	for i, q := range ed.poly {
		if d := math.Hypot(p.X-q.X, p.Y-q.Y); d <= best {
			hit, best = i, d
		}
	}
	insert := -1
	if hit < 0 {
		best = 5 / math.Max(ed.zoom, 0.01)
		for i := 0; i+1 < len(ed.poly); i++ {
			if d := segDist(p, ed.poly[i], ed.poly[i+1]); d <= best {
				insert, best = i+1, d
			}
		}
	}
	if hit < 0 && insert < 0 {
		return false
	}
	e.Call("preventDefault")
	if insert >= 0 {
		ed.poly = append(ed.poly[:insert], append([]Point{p}, ed.poly[insert:]...)...)
		hit = insert
	}
	sm.dragV, sm.dragMoved = hit, insert >= 0
	sm.dragClose = hit == 0 && len(ed.poly) >= 3 && insert < 0
	sm.dragAlt = alt
	sm.dragX, sm.dragY = e.Get("clientX").Float(), e.Get("clientY").Float()
	ed.vp.Call("setPointerCapture", e.Get("pointerId"))
	ed.cursor = ed.poly[len(ed.poly)-1]
	ed.drawPreview()
	return true
}

func segDist(p, a, b Point) float64 {
	dx, dy := b.X-a.X, b.Y-a.Y
	l2 := dx*dx + dy*dy
	t := 0.0
	if l2 > 0 {
		t = math.Max(0, math.Min(1, ((p.X-a.X)*dx+(p.Y-a.Y)*dy)/l2))
	}
	return math.Hypot(p.X-(a.X+t*dx), p.Y-(a.Y+t*dy))
}

// smartPointerMove continues a superpixel stroke or a vertex drag.
func (s *Studio) smartPointerMove(e app.Value) bool {
	ed := s.ed
	if !ed.ready() || s.view != viewImage || smart.ed != ed {
		if ed.ready() && s.view == viewImage && (ed.tool == toolSuperpixel || ed.tool == toolRefine) && s.editing(e) {
			// Hovering the image with a superpixel tool is the moment to prepare them.
			s.startSuperpixels(ed)
		}
		return false
	}
	sm := smart
	if sm.dragV >= 0 && sm.dragV < len(ed.poly) {
		t0 := now()
		if math.Hypot(e.Get("clientX").Float()-sm.dragX, e.Get("clientY").Float()-sm.dragY) > 3 {
			sm.dragMoved = true
		}
		if sm.dragMoved {
			p := ed.toImage(e)
			p.X = math.Max(0, math.Min(float64(ed.w), p.X))
			p.Y = math.Max(0, math.Min(float64(ed.h), p.Y))
			ed.poly[sm.dragV] = p
			ed.cursor = ed.poly[len(ed.poly)-1]
			ed.drawPreview()
		}
		pushSample("rdreSmartPolygon", now()-t0)
		return true
	}
	if ed.stroking && sm.spStroke {
		t0 := now()
		var pts []Point
		if gc := e.Get("getCoalescedEvents"); gc.Truthy() {
			evs := e.Call("getCoalescedEvents")
			for i := 0; i < evs.Length(); i++ {
				pts = append(pts, ed.toImage(evs.Index(i)))
			}
		}
		pts = append(pts, ed.toImage(e))
		s.superpixelDab(ed, sm, pts)
		recordLatency(e)
		pushSample("rdreSmartSuperpixel", now()-t0)
		return true
	}
	if ed.tool == toolSuperpixel && !ed.stroking {
		if s.editing(e) {
			s.brushOutline(ed, ed.toImage(e))
		} else if !ed.cursorRect.Empty() {
			ed.drawCursor(Point{-1, -1})
		}
		if sm.spState == "" {
			s.startSuperpixels(ed)
		}
		return true
	}
	if ed.tool == toolRefine && sm.spState == "" && s.editing(e) {
		s.startSuperpixels(ed)
	}
	return false
}

// smartPointerUp ends a superpixel stroke or a vertex drag.
func (s *Studio) smartPointerUp(e app.Value) bool {
	ed := s.ed
	if !ed.ready() || smart.ed != ed {
		return false
	}
	sm := smart
	if sm.dragV >= 0 {
		closeIt := sm.dragClose && !sm.dragMoved
		sm.dragV = -1
		if closeIt {
			s.closePolygonMode(sm.dragAlt)
		}
		return true
	}
	if ed.stroking && sm.spStroke {
		ed.stroking, sm.spStroke = false, false
		if ed.ed.EndStroke() {
			s.changed()
		}
		return true
	}
	return false
}

// closePolygonMode closes the polygon, as a subtraction when subtract is set whatever the checkbox says.
func (s *Studio) closePolygonMode(subtract bool) {
	ed := s.ed
	if !subtract {
		s.closePolygon()
		return
	}
	keep := ed.polySubtract
	ed.polySubtract = true
	s.closePolygon()
	ed.polySubtract = keep
}

// smartKey handles the smart tools' shortcuts; true when key was one of them.
func (s *Studio) smartKey(e app.Value, key string) bool {
	ed := s.ed
	switch {
	case key == "w":
		s.selectTool(ed, toolWand)
	case key == "s":
		s.selectTool(ed, toolSuperpixel)
	case key == "d":
		s.selectTool(ed, toolRefine)
	case key == ",":
		s.setWandTolerance(ed, max(0, wandTol-4))
	case key == ".":
		s.setWandTolerance(ed, min(255, wandTol+4))
	case key == "Enter" && e.Get("altKey").Bool():
		s.closePolygonMode(true)
	default:
		return false
	}
	return true
}

// installSmartListeners adds what the smart tools need beyond the editor's listeners.
func (s *Studio) installSmartListeners(add func(event string, f func(e app.Value))) {
	// The right button erases: the context menu must not open over the image.
	add("contextmenu", func(e app.Value) {
		if s.editing(e) {
			e.Call("preventDefault")
		}
	})
}

func init() {
	shortcuts = append(shortcuts,
		[2]string{"w / s / d", "magic wand / superpixel brush / refine (+ / −)"},
		[2]string{"wand: click, Shift+click, Alt+click", "select the region (a new click replaces it) / add a region / remove a region"},
		[2]string{", and .", "wand tolerance lower / higher"},
		[2]string{"superpixels: drag, Alt+drag or right drag", "paint / erase whole superpixels"},
		[2]string{"refine: click / Alt+click or right click", "+ add the superpixel / − remove the connected piece of the mask"},
		[2]string{"polygon: drag a vertex, click an edge", "move it / insert a vertex (before closing)"},
		[2]string{"right drag, Alt+drag (brush); Alt+Enter, Alt+click first point (polygon)", "erase / subtract"},
	)
}

func (s *Studio) renderSmartTools() app.UI {
	ed := s.ed
	sm := s.session(ed)
	tool := func(id, label, key, hint string) app.UI {
		return app.Button().Class("tool").Class(map[bool]string{true: "active"}[ed.tool == id]).
			Attr("data-testid", "tool-"+id).Title("%s (%s): %s", label, key, hint).Text(label).
			OnClick(func(ctx app.Context, e app.Event) { s.selectTool(ed, id) })
	}
	hint := ""
	switch ed.tool {
	case toolWand:
		hint = "Click: region of similar colour (a new click replaces it). Shift+click adds, Alt+click removes."
	case toolSuperpixel:
		hint = "Drag: paint whole superpixels. Alt or right drag erases them."
	case toolRefine:
		hint = "Click: + add the superpixel. Alt or right click: − remove the connected piece of the mask."
	case toolPolygon:
		hint = "Drag a vertex to move it, click an edge to insert one. Alt+Enter subtracts."
	}
	status := "superpixels: computed on first use"
	switch sm.spState {
	case spComputing:
		status = "superpixels: computing…"
	case spReady:
		status = fmt.Sprintf("superpixels: %d ready (%.0f ms)", sm.sp.N, sm.spMs)
	case spFailed:
		status = "superpixels: " + sm.spErr
	}
	return app.Div().Class("group").Body(
		app.H3().Text("Smart tools"),
		app.Div().Class("tools").Body(
			tool(toolWand, "Wand", "w", "grow a region of similar colour"),
			tool(toolSuperpixel, "Superpixels", "s", "paint whole superpixels"),
			tool(toolRefine, "Refine ±", "d", "add superpixels, remove pieces"),
		),
		slider("Tolerance ", "wand-tolerance", 0, 255, wandTol, func(v int) { s.setWandTolerance(ed, v) },
			app.Span().Class("num").Attr("data-testid", "wand-tolerance-value").Text(wandTol)),
		app.Label().Class("row").Title("Superpixel width: fine ones follow thin cracks, coarse ones fill blobs in few dabs").Body(
			app.Text("Superpixels "),
			app.Select().Attr("data-testid", "superpixel-size").Disabled(sm.spState == spComputing).
				OnChange(func(ctx app.Context, e app.Event) {
					if v, err := strconv.Atoi(ctx.JSSrc().Get("value").String()); err == nil {
						s.setSuperpixelStep(ed, v)
					}
				}).
				Body(app.Range(spSteps).Slice(func(i int) app.UI {
					return app.Option().Value(strconv.Itoa(spSteps[i].step)).Selected(spSteps[i].step == spStep).Text(spSteps[i].label)
				})),
		),
		app.P().Class("muted").Attr("data-testid", "smart-hint").Hidden(hint == "").Text(hint),
		app.P().Class("muted").Attr("data-testid", "superpixel-status").Attr("data-state", sm.spState).Attr("data-count", spCount(sm)).Text(status),
	)
}

// spCount is the number of superpixels of the session, 0 until they are computed.
func spCount(sm *smartSession) int {
	if sm.sp == nil {
		return 0
	}
	return sm.sp.N
}
