package ui

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/rdre-studio/studio/shared/mask"
	"github.com/rdre-studio/studio/shared/protocol"
)

const (
	toolBrush   = "brush"
	toolEraser  = "eraser"
	toolPolygon = "polygon"
	toolFill    = "fill"

	statusLoading = "loading"
	statusSaved   = "saved"
	statusSaving  = "saving"
	statusFailed  = "failed"
)

// editorState is the open image: its mask, tools, view and save state.
type editorState struct {
	dataset, image string
	w, h           int
	ed             *Editor
	version        int
	source         string

	status  string
	saveErr string
	saving  bool
	dirty   bool // changed since the last snapshot sent to the server
	saveMs  float64

	tool          string
	size          int
	cls           int
	classes       []protocol.LabelClass
	palette       [256][4]uint8
	paintBuf      []byte // reused by paint: a whole-image repaint would otherwise allocate 4 bytes a pixel each time
	opacity       float64
	showMask      bool
	showGT        bool
	polySubtract  bool
	help          bool
	history       []protocol.MaskVersion
	showHistory   bool
	newClassName  string
	newClassCol   string
	classErr      string // why the last Add failed, shown under the form
	reviewErr     string // why the last review action did nothing, shown in the review line
	hidden        []int  // classes not drawn (the dataset's prefs)
	renaming      int    // the class whose name is being edited, 0 for none
	renameText    string
	confirmDelete int    // the class whose deletion waits for a confirmation, 0 for none
	toolMsg       string // why the last tool action did nothing (a fill on an open area)

	// view and pointer state, driven by raw DOM listeners
	heat *heatState

	zoom, tx, ty float64
	fitted       bool
	canvas, cctx app.Value
	prev, pctx   app.Value
	stage, vp    app.Value
	stroking     bool
	strokeValue  uint8
	panning      bool
	panX, panY   float64
	spaceDown    bool
	poly         []Point
	cursor       Point
	cursorRect   Rect // where the brush outline was last drawn on the preview canvas
}

func (ed *editorState) ready() bool  { return ed != nil && ed.ed != nil }
func (ed *editorState) failed() bool { return ed != nil && ed.status == statusFailed }

func (ed *editorState) setPalette() {
	for i := range ed.palette {
		ed.palette[i] = [4]uint8{230, 57, 70, 255}
	}
	ed.palette[0] = [4]uint8{}
	for _, c := range ed.classes {
		if c.Index > 0 && c.Index < 256 {
			if rgb, ok := parseColor(c.Color); ok {
				ed.palette[c.Index] = [4]uint8{rgb[0], rgb[1], rgb[2], 255}
			}
		}
	}
	for _, i := range ed.hidden {
		if i > 0 && i < 256 {
			ed.palette[i][3] = 0 // a hidden class is not drawn; its pixels stay in the mask
		}
	}
}

func parseColor(s string) ([3]uint8, bool) {
	if len(s) != 7 || s[0] != '#' {
		return [3]uint8{}, false
	}
	v, err := strconv.ParseUint(s[1:], 16, 32)
	if err != nil {
		return [3]uint8{}, false
	}
	return [3]uint8{uint8(v >> 16), uint8(v >> 8), uint8(v)}, true
}

func (ed *editorState) className(idx int) string {
	for _, c := range ed.classes {
		if c.Index == idx {
			return c.Name
		}
	}
	return fmt.Sprintf("class %d", idx)
}

// openImage loads the classes and the newest mask of an image into a fresh editor.
func (s *Studio) openImage(ctx app.Context, ds, img string) {
	ed := &editorState{
		dataset: ds, image: img, status: statusLoading,
		tool: toolBrush, size: 16, cls: 1, opacity: 0.6, showMask: true, showGT: true,
		newClassCol: "#f4a261",
	}
	if s.ed != nil {
		// Tools and view preferences carry over from one image to the next.
		ed.tool, ed.size, ed.opacity, ed.showMask, ed.showGT = s.ed.tool, s.ed.size, s.ed.opacity, s.ed.showMask, s.ed.showGT
		if s.ed.dataset == ds {
			ed.cls = s.ed.cls
		}
	}
	if s.jobID != "" {
		ed.heat = &heatState{job: s.jobID, on: true, cmap: cmapTurbo, opacity: 0.6}
		if s.ed != nil && s.ed.heat != nil {
			p := s.ed.heat
			ed.heat.on, ed.heat.cmap, ed.heat.compare, ed.heat.opacity = p.on, p.cmap, p.compare, p.opacity
			if p.job == s.jobID {
				// The threshold is in the model's units: the same value means the same on every image.
				ed.heat.thr, ed.heat.thrSet = p.thr, p.thrSet
			}
		}
		ed.heat.lut = colormap(ed.heat.cmap)
	}
	s.ed = ed
	ctx.Async(func() {
		var classes protocol.ClassesReply
		errC := request(protocol.TypeClassesList, protocol.ClassesListRequest{Dataset: ds}, &classes)
		var m protocol.MaskReply
		errM := request(protocol.TypeMaskGet, protocol.MaskGetRequest{Dataset: ds, Image: img}, &m)
		var lbl *mask.Label
		if errM == nil {
			lbl, errM = mask.Decode(m.RLE)
			if errM == nil && (lbl.W != m.Width || lbl.H != m.Height) {
				errM = fmt.Errorf("mask is %dx%d, reply says %dx%d", lbl.W, lbl.H, m.Width, m.Height)
			}
		}
		s.mctx.Dispatch(func(ctx app.Context) {
			if s.ed != ed {
				return
			}
			if errC != nil {
				s.err = fmt.Sprintf("loading label classes: %v", errC)
			} else {
				ed.classes = classes.Classes
			}
			ed.setPalette()
			if errM != nil {
				ed.status = statusFailed
				ed.saveErr = errM.Error()
				s.err = fmt.Sprintf("loading mask of %s: %v", img, errM)
				return
			}
			// The editor this session had for the image, with its undo history, when the server still
			// has what it showed.
			e := s.edits.take(ds, img, m.Version, lbl.W, lbl.H)
			if e == nil {
				var err error
				e, err = NewEditor(lbl.W, lbl.H)
				if err == nil {
					err = e.Load(lbl.Pix)
				}
				if err != nil {
					s.err = fmt.Sprintf("opening mask of %s: %v", img, err)
					return
				}
			}
			ed.ed, ed.w, ed.h, ed.version, ed.source = e, lbl.W, lbl.H, m.Version, m.Source
			ed.status = statusSaved
			s.applyClassView(ed)
			s.pickDefaultClass(ed)
			ctx.Defer(func(app.Context) {
				s.attachCanvas(ed)
				if ed.heat != nil && ed.heat.on {
					s.loadHeat(ed)
				}
			})
		})
	})
}

// pickDefaultClass selects the class named like the image's defect folder, else keeps the current
// one if it exists, else the first.
func (s *Studio) pickDefaultClass(ed *editorState) {
	if im := s.imageInfo(ed.image); im != nil && im.Kind != protocol.KindGood {
		for _, c := range ed.classes {
			if c.Name == im.Kind {
				ed.cls = c.Index
				return
			}
		}
	}
	for _, c := range ed.classes {
		if c.Index == ed.cls {
			return
		}
	}
	if len(ed.classes) > 0 {
		ed.cls = ed.classes[0].Index
	}
}

func (s *Studio) imageInfo(id string) *protocol.ImageInfo {
	if s.imgDSID != s.dsID {
		return nil
	}
	for i := range s.images {
		if s.images[i].ID == id {
			return &s.images[i]
		}
	}
	return nil
}

// leaveImage sends what the open image has not saved yet before the view moves on.
func (s *Studio) leaveImage(ctx app.Context) {
	if s.ed == nil {
		return
	}
	ed := s.ed
	if ed.stroking {
		ed.ed.EndStroke()
		ed.stroking = false
		ed.dirty = true
	}
	ed.poly = nil
	if ed.dirty {
		s.saveEditor(ctx, ed)
	}
	s.edits.keep(ed)
	if s.view != viewImage {
		s.ed = nil
	}
}

// attachCanvas binds the rendered canvas elements to the editor and paints the whole mask.
func (s *Studio) attachCanvas(ed *editorState) {
	if s.ed != ed || !ed.ready() {
		return
	}
	win := app.Window()
	ed.canvas = win.GetElementByID("mask-canvas")
	ed.prev = win.GetElementByID("preview-canvas")
	ed.stage = win.GetElementByID("stage")
	ed.vp = win.GetElementByID("viewport")
	if !ed.canvas.Truthy() || !ed.prev.Truthy() || !ed.stage.Truthy() || !ed.vp.Truthy() {
		s.err = "editor: canvas elements missing"
		return
	}
	ed.cctx = ed.canvas.Call("getContext", "2d")
	ed.pctx = ed.prev.Call("getContext", "2d")
	setGamma(s.prefsOf(ed.dataset))
	ed.paint(Rect{0, 0, ed.w, ed.h})
	if !ed.fitted {
		ed.fit()
	}
}

// paint copies the rectangle r of the label mask into the canvas: only what changed crosses from Go
// to JavaScript.
func (ed *editorState) paint(r Rect) {
	r = r.clip(ed.w, ed.h)
	if r.Empty() || ed.cctx == nil || !ed.cctx.Truthy() {
		return
	}
	rw, rh := r.X1-r.X0, r.Y1-r.Y0
	if cap(ed.paintBuf) < rw*rh*4 {
		ed.paintBuf = make([]byte, rw*rh*4)
	}
	buf := ed.paintBuf[:rw*rh*4]
	k := 0
	for y := r.Y0; y < r.Y1; y++ {
		row := ed.ed.Pix[y*ed.w+r.X0 : y*ed.w+r.X1]
		for _, v := range row {
			*(*[4]uint8)(buf[k : k+4]) = ed.palette[v]
			k += 4
		}
	}
	img := ed.cctx.Call("createImageData", rw, rh)
	app.CopyBytesToJS(img.Get("data"), buf)
	ed.cctx.Call("putImageData", img, r.X0, r.Y0)
}

func (ed *editorState) applyTransform() {
	if ed.stage == nil || !ed.stage.Truthy() {
		return
	}
	ed.stage.Get("style").Set("transform", fmt.Sprintf("translate(%.2fpx,%.2fpx) scale(%.5f)", ed.tx, ed.ty, ed.zoom))
	if l := app.Window().GetElementByID("zoom-label"); l.Truthy() {
		l.Set("textContent", fmt.Sprintf("%.0f%%", ed.zoom*100))
	}
	ed.drawPreview()
}

func (ed *editorState) fit() {
	if ed.vp == nil || !ed.vp.Truthy() || ed.w == 0 {
		return
	}
	vw, vh := ed.vp.Get("clientWidth").Float(), ed.vp.Get("clientHeight").Float()
	if vw <= 0 || vh <= 0 {
		return
	}
	ed.zoom = math.Min(vw/float64(ed.w), vh/float64(ed.h)) * 0.98
	ed.tx = (vw - float64(ed.w)*ed.zoom) / 2
	ed.ty = (vh - float64(ed.h)*ed.zoom) / 2
	ed.fitted = true
	ed.applyTransform()
}

// zoomAt zooms by factor keeping the viewport point (vx, vy) fixed.
func (ed *editorState) zoomAt(factor, vx, vy float64) {
	nz := math.Min(64, math.Max(0.02, ed.zoom*factor))
	factor = nz / ed.zoom
	ed.tx = vx - (vx-ed.tx)*factor
	ed.ty = vy - (vy-ed.ty)*factor
	ed.zoom = nz
	ed.applyTransform()
}

func (ed *editorState) zoomCenter(factor float64) {
	if ed.vp == nil || !ed.vp.Truthy() {
		return
	}
	ed.zoomAt(factor, ed.vp.Get("clientWidth").Float()/2, ed.vp.Get("clientHeight").Float()/2)
}

func (ed *editorState) actualSize() {
	if ed.vp == nil || !ed.vp.Truthy() {
		return
	}
	ed.zoomAt(1/ed.zoom, ed.vp.Get("clientWidth").Float()/2, ed.vp.Get("clientHeight").Float()/2)
}

// drawPreview draws the polygon being built and the rubber band to the pointer.
func (ed *editorState) drawPreview() {
	if ed.pctx == nil || !ed.pctx.Truthy() {
		return
	}
	p := ed.pctx
	p.Call("clearRect", 0, 0, ed.w, ed.h)
	ed.cursorRect = Rect{}
	if len(ed.poly) == 0 {
		return
	}
	// Edges and vertices drawn dark under light, so they stay visible on bright and dark parts alike;
	// vertices are handles a user drags, so they are squares of 8 screen pixels.
	lw := 1.5 / math.Max(ed.zoom, 0.01)
	p.Set("fillStyle", "rgba(255,209,102,0.25)")
	p.Call("beginPath")
	p.Call("moveTo", ed.poly[0].X, ed.poly[0].Y)
	for _, q := range ed.poly[1:] {
		p.Call("lineTo", q.X, q.Y)
	}
	p.Call("lineTo", ed.cursor.X, ed.cursor.Y)
	p.Call("fill")
	for _, st := range []struct {
		w     float64
		color string
	}{{3 * lw, "rgba(0,0,0,0.75)"}, {lw, "#ffd166"}} {
		p.Set("lineWidth", st.w)
		p.Set("strokeStyle", st.color)
		p.Call("stroke")
	}
	h := 4 * lw / 1.5
	for i, q := range ed.poly {
		p.Set("fillStyle", "rgba(0,0,0,0.8)")
		p.Call("fillRect", q.X-h-lw, q.Y-h-lw, 2*(h+lw), 2*(h+lw))
		p.Set("fillStyle", map[bool]string{true: "#ffd166", false: "#ffffff"}[i == 0]) // the first closes it
		p.Call("fillRect", q.X-h, q.Y-h, 2*h, 2*h)
	}
}

// drawCursor outlines the brush at p on the preview canvas, clearing only the previous outline so a
// pointer move stays cheap on large images. A negative p only clears.
func (ed *editorState) drawCursor(p Point) {
	if ed.pctx == nil || !ed.pctx.Truthy() || len(ed.poly) > 0 {
		return
	}
	c := ed.pctx
	if r := ed.cursorRect; !r.Empty() {
		c.Call("clearRect", r.X0, r.Y0, r.X1-r.X0, r.Y1-r.Y0)
		ed.cursorRect = Rect{}
	}
	if (ed.tool != toolBrush && ed.tool != toolEraser) || p.X < 0 || p.Y < 0 {
		return
	}
	lw := 1.5 / math.Max(ed.zoom, 0.01)
	rad := math.Max(float64(ed.size)/2, 0.5)
	pad := rad + 2*lw + 1
	ed.cursorRect = Rect{int(math.Floor(p.X - pad)), int(math.Floor(p.Y - pad)), int(math.Ceil(p.X+pad)) + 1, int(math.Ceil(p.Y+pad)) + 1}
	c.Set("lineWidth", lw)
	c.Set("strokeStyle", map[bool]string{true: "rgba(255,255,255,0.9)", false: "rgba(255,209,102,0.95)"}[ed.tool == toolBrush])
	c.Call("beginPath")
	c.Call("arc", p.X, p.Y, rad, 0, 2*math.Pi)
	c.Call("stroke")
}

// toImage converts a pointer event's client position to image pixel coordinates.
func (ed *editorState) toImage(e app.Value) Point {
	r := ed.canvas.Call("getBoundingClientRect")
	w, h := r.Get("width").Float(), r.Get("height").Float()
	if w <= 0 || h <= 0 {
		return Point{-1, -1}
	}
	return Point{
		X: (e.Get("clientX").Float() - r.Get("left").Float()) * float64(ed.w) / w,
		Y: (e.Get("clientY").Float() - r.Get("top").Float()) * float64(ed.h) / h,
	}
}

func (ed *editorState) paintValue() uint8 {
	if ed.tool == toolEraser {
		return 0
	}
	return uint8(ed.cls)
}

// closePolygon fills (or, in subtract mode, erases) the polygon being built.
func (s *Studio) closePolygon() {
	ed := s.ed
	if !ed.ready() || len(ed.poly) < 3 {
		return
	}
	v := uint8(ed.cls)
	if ed.polySubtract {
		v = 0
	}
	r, err := ed.ed.FillPolygon(ed.poly, v)
	ed.poly = nil
	ed.drawPreview()
	if err != nil {
		return
	}
	ed.paint(r)
	s.changed()
}

// changed records a finished edit: it re-renders the toolbar and saves.
func (s *Studio) changed() {
	ed := s.ed
	s.mctx.Dispatch(func(ctx app.Context) {
		ed.dirty = true
		s.saveEditor(ctx, ed)
		if ed.heat.ready() && ed.heat.on {
			// The mask's contour and the comparison follow the edit.
			s.paintHeat(ed)
		}
	})
}

// saveEditor sends the editor's mask as a new version. Saves of one image never overlap: an edit made
// while a save is in flight is sent when that save returns, so versions follow the order of edits.
func (s *Studio) saveEditor(ctx app.Context, ed *editorState) {
	if !ed.ready() || !ed.dirty || ed.saving || s.fatal != "" {
		return
	}
	if len(ed.classes) == 0 {
		// The server only stores pixels of known classes: the first drawing on a dataset without any
		// creates a "defect" class (rename-free: the user can add better named ones at any time).
		s.createDefaultClass(ctx, ed)
		return
	}
	ed.dropUnknownClasses()
	ed.saving, ed.dirty = true, false
	ed.status = statusSaving
	lbl := mask.Label{W: ed.w, H: ed.h, Pix: ed.ed.Pix}
	req := protocol.MaskSaveRequest{
		Dataset: ed.dataset, Image: ed.image, BaseVersion: ed.version,
		Width: ed.w, Height: ed.h, RLE: lbl.Encode(),
	}
	perf := app.Window().Get("performance")
	t0 := perf.Call("now").Float()
	ctx.Async(func() {
		var rep protocol.MaskSavedReply
		err := request(protocol.TypeMaskSave, req, &rep)
		s.mctx.Dispatch(func(ctx app.Context) {
			ed.saving = false
			if err != nil {
				ed.status, ed.saveErr, ed.dirty = statusFailed, err.Error(), true
				ctx.After(3*time.Second, func(ctx app.Context) {
					if ed.status == statusFailed && s.connected {
						s.saveEditor(ctx, ed)
					}
				})
				return
			}
			ed.saveMs = perf.Call("now").Float() - t0
			pushSample("rdreSaveMs", ed.saveMs)
			ed.version = rep.Version
			ed.source = "workspace"
			s.markAnnotated(ed.dataset, ed.image, !rep.Empty)
			s.afterOwnSave(ed.dataset, ed.image, rep.Empty)
			if ed.dirty {
				s.saveEditor(ctx, ed)
				return
			}
			ed.status, ed.saveErr = statusSaved, ""
		})
	})
}

// dropUnknownClasses makes background of pixels whose class no longer exists (deleted here or in
// another tab, or brought back by an undo past the deletion): the server refuses a mask with them, and
// a deleted class's pixels are background from its deletion on.
func (ed *editorState) dropUnknownClasses() {
	var known [256]bool
	known[0] = true
	for _, c := range ed.classes {
		known[uint8(c.Index)] = true
	}
	changed := false
	for i, v := range ed.ed.Pix {
		if !known[v] {
			ed.ed.Pix[i], changed = 0, true
		}
	}
	if changed {
		ed.paint(Rect{0, 0, ed.w, ed.h})
	}
}

// onRemoteSave reloads the mask another tab saved, unless this tab has edits of its own in flight
// (its next save supersedes, and the history keeps both).
func (s *Studio) onRemoteSave(ctx app.Context, rep protocol.MaskSavedReply) {
	ed := s.ed
	if !ed.ready() || rep.Version <= ed.version || ed.saving || ed.dirty || ed.stroking {
		return
	}
	s.reloadMask(ctx, ed, 0)
}

// reloadMask replaces the editor's mask with a stored version (0: the newest).
func (s *Studio) reloadMask(ctx app.Context, ed *editorState, version int) {
	ctx.Async(func() {
		var m protocol.MaskReply
		err := request(protocol.TypeMaskGet, protocol.MaskGetRequest{Dataset: ed.dataset, Image: ed.image, Version: version}, &m)
		var lbl *mask.Label
		if err == nil {
			lbl, err = mask.Decode(m.RLE)
		}
		s.mctx.Dispatch(func(ctx app.Context) {
			if s.ed != ed {
				return
			}
			if err == nil {
				err = ed.ed.Load(lbl.Pix)
			}
			if err != nil {
				s.err = fmt.Sprintf("reloading mask of %s: %v", ed.image, err)
				return
			}
			ed.version, ed.source = m.Version, m.Source
			ed.paint(Rect{0, 0, ed.w, ed.h})
			s.paintHeat(ed)
		})
	})
}

func pushSample(name string, v float64) {
	win := app.Window()
	arr := win.Get(name)
	if !arr.Truthy() {
		arr = app.Window().Get("Array").New()
		win.Set(name, arr)
	}
	if arr.Length() < 100000 {
		arr.Call("push", v)
	}
}

func (s *Studio) undo() {
	if r, ok := s.ed.ed.Undo(); ok {
		s.ed.paint(r)
		s.changed()
	}
}

func (s *Studio) redo() {
	if r, ok := s.ed.ed.Redo(); ok {
		s.ed.paint(r)
		s.changed()
	}
}

func (s *Studio) neighbour(delta int) string {
	imgs := s.filtered()
	for i, im := range imgs {
		if im.ID == s.imgID {
			j := i + delta
			if j >= 0 && j < len(imgs) {
				return imgs[j].ID
			}
			return ""
		}
	}
	// The open image left the filtered list (it was just marked reviewed under a review filter): its
	// neighbours are the filtered images around its place in the unfiltered order.
	all := s.filteredBy(false)
	pos := map[string]int{}
	for i, im := range all {
		pos[im.ID] = i
	}
	cur, ok := pos[s.imgID]
	if !ok {
		return ""
	}
	best := ""
	for _, im := range imgs {
		p := pos[im.ID]
		if delta > 0 && p > cur {
			return im.ID
		}
		if delta < 0 && p < cur {
			best = im.ID
		}
	}
	return best
}

func (s *Studio) goNeighbour(ctx app.Context, delta int) {
	if id := s.neighbour(delta); id != "" {
		ctx.Navigate(s.imageURL(id))
	}
}

// createClass adds the class named in the form. Its errors show under the form: the editor's canvases
// must not be touched by a typo.
func (s *Studio) createClass(ctx app.Context) {
	ed := s.ed
	name := strings.TrimSpace(ed.newClassName)
	if name == "" {
		ed.classErr = "a new class needs a name"
		return
	}
	for _, c := range ed.classes {
		if strings.EqualFold(c.Name, name) {
			ed.classErr = fmt.Sprintf("a class named %q exists", c.Name)
			return
		}
	}
	ed.classErr = ""
	req := protocol.ClassCreateRequest{Dataset: ed.dataset, Name: name, Color: ed.newClassCol}
	ctx.Async(func() {
		var rep protocol.ClassesReply
		err := request(protocol.TypeClassCreate, req, &rep)
		s.mctx.Dispatch(func(ctx app.Context) {
			if err != nil {
				ed.classErr = fmt.Sprintf("creating class %q: %v", name, err)
				return
			}
			ed.classes = rep.Classes
			ed.setPalette()
			for _, c := range rep.Classes {
				if c.Name == name {
					ed.cls = c.Index
				}
			}
			ed.newClassName = ""
			// go-app removes an empty value attribute but leaves what the user typed in the field.
			if in := app.Window().GetElementByID("class-name"); in.Truthy() {
				in.Set("value", "")
			}
			ed.paint(Rect{0, 0, ed.w, ed.h})
		})
	})
}

func (s *Studio) createDefaultClass(ctx app.Context, ed *editorState) {
	ed.saving, ed.status = true, statusSaving
	req := protocol.ClassCreateRequest{Dataset: ed.dataset, Name: "defect", Color: "#e63946"}
	ctx.Async(func() {
		var rep protocol.ClassesReply
		err := request(protocol.TypeClassCreate, req, &rep)
		s.mctx.Dispatch(func(ctx app.Context) {
			ed.saving = false
			if err == nil && len(rep.Classes) == 0 {
				err = fmt.Errorf("the server created no class")
			}
			if err != nil {
				ed.status, ed.saveErr = statusFailed, fmt.Sprintf("creating a label class: %v", err)
				return
			}
			ed.classes = rep.Classes
			ed.setPalette()
			if ed.cls != rep.Classes[0].Index {
				// Repaint what was drawn with the placeholder index in the class the server assigned.
				for i, v := range ed.ed.Pix {
					if v == uint8(ed.cls) {
						ed.ed.Pix[i] = uint8(rep.Classes[0].Index)
					}
				}
				ed.cls = rep.Classes[0].Index
			}
			ed.paint(Rect{0, 0, ed.w, ed.h})
			s.saveEditor(ctx, ed)
		})
	})
}

func (s *Studio) loadHistory(ctx app.Context) {
	ed := s.ed
	ctx.Async(func() {
		var rep protocol.MaskVersionsReply
		err := request(protocol.TypeMaskHistory, protocol.MaskGetRequest{Dataset: ed.dataset, Image: ed.image}, &rep)
		s.mctx.Dispatch(func(ctx app.Context) {
			if err != nil {
				s.err = fmt.Sprintf("loading history of %s: %v", ed.image, err)
				return
			}
			ed.history = rep.Versions
		})
	})
}

func (s *Studio) revert(ctx app.Context, version int) {
	ed := s.ed
	ctx.Async(func() {
		var rep protocol.MaskSavedReply
		err := request(protocol.TypeMaskRevert, protocol.MaskRevertRequest{Dataset: ed.dataset, Image: ed.image, Version: version}, &rep)
		s.mctx.Dispatch(func(ctx app.Context) {
			if err != nil {
				s.err = fmt.Sprintf("reverting %s to version %d: %v", ed.image, version, err)
				return
			}
			s.markAnnotated(ed.dataset, ed.image, !rep.Empty)
			s.afterOwnSave(ed.dataset, ed.image, rep.Empty)
			s.reloadMask(ctx, ed, 0)
			s.loadHistory(ctx)
		})
	})
}

// editCache keeps the editors of the images this session opened, so that coming back to an image finds
// its undo history. It is bounded: the least recently left images are forgotten first.
type editCache struct {
	order []*editorState // oldest first
}

const (
	maxCachedEditors   = 32
	maxCachedEditBytes = 256 << 20
)

// keep remembers the editor of an image being left.
func (c *editCache) keep(ed *editorState) {
	if !ed.ready() {
		return
	}
	c.drop(ed.dataset, ed.image)
	c.order = append(c.order, ed)
	total := 0
	for _, e := range c.order {
		total += e.ed.heldBytes()
	}
	for len(c.order) > 1 && (len(c.order) > maxCachedEditors || total > maxCachedEditBytes) {
		total -= c.order[0].ed.heldBytes()
		c.order[0] = nil
		c.order = c.order[1:]
	}
}

func (c *editCache) drop(ds, img string) *editorState {
	for i, e := range c.order {
		if e.dataset == ds && e.image == img {
			c.order = append(c.order[:i], c.order[i+1:]...)
			return e
		}
	}
	return nil
}

// take returns the kept editor of an image if it still shows the stored version (no other tab saved
// since, no edit of its own unsaved), else nil: the history would describe another mask.
func (c *editCache) take(ds, img string, version, w, h int) *Editor {
	e := c.drop(ds, img)
	if e == nil || e.version != version || e.dirty || e.saving || e.ed.W != w || e.ed.H != h {
		return nil
	}
	return e.ed
}
