package ui

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/rdre-studio/studio/shared/protocol"
)

// Register installs the UI's routes. The same component serves all three so that the websocket, the
// dataset lists and the filters survive moving between views.
func Register() {
	for _, p := range []string{"/", "/dataset", "/image"} {
		app.Route(p, func() app.Composer { return &Studio{} })
	}
}

var (
	clientOnce sync.Once
	client     *Client
)

// wsClient returns the page's websocket client, dialling it on first use. Only called in the browser.
func wsClient() *Client {
	clientOnce.Do(func() {
		loc := app.Window().Get("location")
		scheme := "ws:"
		if loc.Get("protocol").String() == "https:" {
			scheme = "wss:"
		}
		client = NewClient(scheme + "//" + loc.Get("host").String() + "/ws")
		go client.Run(context.Background())
	})
	return client
}

// requestTimeout bounds one websocket request; a mask save of a large image is the slowest.
const requestTimeout = 30 * time.Second

func request(typ string, payload, reply any) error {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	return wsClient().Request(ctx, typ, payload, reply)
}

const (
	viewDatasets = "datasets"
	viewGrid     = "grid"
	viewImage    = "image"
)

// Studio is the whole application: a header and one of three views.
type Studio struct {
	app.Compo

	// mctx is the page's own context. Every reply of an asynchronous request is dispatched through it:
	// go-app drops a dispatch whose source element was unmounted meanwhile (a confirm button that
	// closed, a panel that re-rendered), and the reply would be lost.
	mctx      app.Context
	mounted   bool
	connected bool
	err       string
	updated   bool // a newer build of the UI is installed and waits for a reload

	view     string
	datasets []protocol.DatasetInfo
	loadedDS bool

	dsID    string
	images  []protocol.ImageInfo
	imgDSID string // dataset whose images are in images
	loading bool

	// grid filters, kept in the URL so that a reload or a shared link shows the same grid
	fSplit, fKind, fSort string
	fMine                bool
	fReview              string // review state filter, "" for all
	limit                int
	gridReadyMarked      bool

	imgID string
	ed    *editorState
	// edits keeps the editors of images opened in this session, so that undo survives leaving an image.
	edits editCache
	// fatal is set once a handler panicked: the page then says so instead of claiming to save.
	fatal string
	// gridScroll is where each grid (by its URL) was scrolled when the user left it.
	gridScroll map[string]gridPos
	// review states of the images of reviewsDS (absent: unlabelled), and every dataset's counts for the
	// dataset list (review.go)
	reviews   map[string]string
	reviewsDS string
	dsCounts  map[string]protocol.ReviewCounts
	// prefs are the per-dataset display settings of this browser session (review.go).
	prefs map[string]*dsPrefs
	// evalClosed is set while the user keeps the evaluation panel collapsed.
	evalClosed bool

	// evaluation jobs of the dataset; jobID is the one whose scores and heatmaps are shown
	jobs      []protocol.JobInfo
	jobsDS    string
	jobID     string
	scoresJob string
	scores    map[string]float64 // the selected job's scores: live[jobID].scores

	// evaluation panel (eval.go)
	live        map[string]*liveJob
	models      []protocol.ModelInfo
	modelsState string
	modelSel    string
	masksSel    string
	categorySel string
	noiseSel    string
	starting    bool
	cancelling  string
	evalErr     string
	compareSel  string
	// thr is the thresholds panel of the selected finished job (thresholds.go).
	thr *thresholdPanel
	// autoJobDS is the dataset whose newest finished job was offered once (followRunningJob).
	autoJobDS string
}

// OnMount connects the websocket and installs the browser-level listeners.
func (s *Studio) OnMount(ctx app.Context) {
	s.mctx = ctx
	s.mounted = true
	if app.IsServer {
		return
	}
	installWatchdog()
	c := wsClient()
	c.OnConnect(func(up bool) {
		s.mctx.Dispatch(func(ctx app.Context) {
			s.connected = up
			if up {
				s.reloadAfterConnect(ctx)
			}
		})
	})
	c.OnPush(func(env protocol.Envelope) {
		s.mctx.Dispatch(func(ctx app.Context) { s.onPush(ctx, env) })
	})
	s.installListeners(ctx)
}

// OnAppUpdate is called by go-app when the service worker installed a newer build. The page keeps
// running the old one until the user reloads: a forced reload could land in the middle of a stroke.
func (s *Studio) OnAppUpdate(ctx app.Context) {
	s.updated = true
}

// OnDismount releases the listeners.
func (s *Studio) OnDismount() {
	s.mounted = false
	s.removeListeners()
}

// OnNav reads the view from the URL and loads what it needs.
func (s *Studio) OnNav(ctx app.Context) {
	u := ctx.Page().URL()
	q := u.Query()
	prevImg, prevDS, prevJob := s.imgID, s.dsID, s.jobID
	if s.view == viewGrid && !app.IsServer {
		// The DOM still shows the grid being left.
		if s.gridScroll == nil {
			s.gridScroll = map[string]gridPos{}
		}
		s.gridScroll[s.gridURL(s.fSplit, s.fKind, s.fSort, s.fMine)] = readGridPos()
	}
	s.selectJob(q.Get("job"))
	if prevJob != s.jobID {
		s.compareSel = ""
	}
	switch u.Path {
	case "/dataset":
		s.view = viewGrid
		s.dsID = q.Get("id")
		s.fSplit, s.fKind, s.fSort = q.Get("split"), q.Get("kind"), q.Get("sort")
		s.fMine = q.Get("mine") == "1"
		s.fReview = q.Get("review")
		if s.limit == 0 || prevDS != s.dsID {
			s.limit = gridPage
		}
	case "/image":
		s.view = viewImage
		s.dsID = q.Get("dataset")
		s.imgID = q.Get("id")
	default:
		s.view = viewDatasets
	}
	if app.IsServer {
		return
	}
	if s.view != viewImage || prevImg != s.imgID || prevDS != s.dsID {
		s.leaveImage(ctx)
	}
	s.load(ctx)
	if s.view == viewGrid {
		s.restoreGridScroll(ctx)
	}
}

// gridPos is where a grid was scrolled: the first tile in view and its distance from the view's top.
// Panels above the grid may have another height when the user comes back, so the tile is the anchor and
// the raw scroll offset only a fallback.
type gridPos struct {
	tile      string
	offset    float64
	scrollTop float64
}

func gridView() app.Value { return app.Window().Get("document").Call("querySelector", "main.view") }

func readGridPos() gridPos {
	v := gridView()
	if !v.Truthy() {
		return gridPos{}
	}
	p := gridPos{scrollTop: v.Get("scrollTop").Float()}
	top := v.Call("getBoundingClientRect").Get("top").Float()
	tiles := app.Window().Get("document").Call("querySelectorAll", "[data-testid=image-tile]")
	for i := 0; i < tiles.Length(); i++ {
		t := tiles.Index(i)
		r := t.Call("getBoundingClientRect")
		if r.Get("bottom").Float() > top {
			p.tile, p.offset = t.Get("dataset").Get("id").String(), r.Get("top").Float()-top
			break
		}
	}
	return p
}

// restoreGridScroll puts a grid the user comes back to where it was scrolled. Its tiles have a fixed
// size, so the position is right as soon as the list is rendered, before any thumbnail arrives.
func (s *Studio) restoreGridScroll(ctx app.Context) {
	p, ok := s.gridScroll[s.gridURL(s.fSplit, s.fKind, s.fSort, s.fMine)]
	if !ok || s.imgDSID != s.dsID {
		return
	}
	ctx.Defer(func(app.Context) {
		v := gridView()
		if !v.Truthy() {
			return
		}
		v.Set("scrollTop", p.scrollTop)
		if p.tile == "" {
			return
		}
		// Compared in Go rather than in a CSS selector: image IDs are file paths, any character goes.
		tiles := app.Window().Get("document").Call("querySelectorAll", "[data-testid=image-tile]")
		for i := 0; i < tiles.Length(); i++ {
			if t := tiles.Index(i); t.Get("dataset").Get("id").String() == p.tile {
				top := v.Call("getBoundingClientRect").Get("top").Float()
				v.Set("scrollTop", v.Get("scrollTop").Float()+t.Call("getBoundingClientRect").Get("top").Float()-top-p.offset)
				return
			}
		}
	})
}

// reloadAfterConnect refreshes what a dropped connection may have made stale.
func (s *Studio) reloadAfterConnect(ctx app.Context) {
	s.err = ""
	// Pushes sent while the connection was down are lost: catch up from snapshots.
	s.scoresJob, s.jobsDS = "", ""
	if s.modelsState != modelsReady {
		s.modelsState = modelsUnknown
	}
	s.load(ctx)
	if s.ed != nil && s.ed.failed() {
		s.saveEditor(ctx, s.ed)
	}
}

// load fetches what the current view needs and is not loaded yet.
func (s *Studio) load(ctx app.Context) {
	if !s.loadedDS {
		ctx.Async(func() {
			var rep protocol.DatasetsReply
			err := request(protocol.TypeDatasetsList, nil, &rep)
			s.mctx.Dispatch(func(ctx app.Context) {
				if err != nil {
					s.err = fmt.Sprintf("loading datasets: %v", err)
					return
				}
				s.datasets, s.loadedDS = rep.Datasets, true
			})
		})
	}
	if (s.view == viewGrid || s.view == viewImage) && s.dsID != "" && (s.imgDSID != s.dsID || s.images == nil) && !s.loading {
		s.loading = true
		ds := s.dsID
		ctx.Async(func() {
			var rep protocol.ImagesReply
			err := request(protocol.TypeImagesList, protocol.ImagesListRequest{Dataset: ds}, &rep)
			s.mctx.Dispatch(func(ctx app.Context) {
				s.loading = false
				if err != nil {
					s.err = fmt.Sprintf("loading images of %s: %v", ds, err)
					return
				}
				s.images, s.imgDSID = rep.Images, ds
				if rep.Images == nil {
					s.images = []protocol.ImageInfo{}
				}
				s.markGridReady(ctx)
			})
		})
	}
	if (s.view == viewGrid || s.view == viewImage) && s.dsID != "" && s.reviewsDS != s.dsID {
		s.loadReviews(ctx, s.dsID)
	}
	if s.view == viewDatasets {
		s.loadReviewSummary(ctx)
	}
	if (s.view == viewGrid || s.view == viewImage) && s.dsID != "" && s.jobsDS != s.dsID {
		s.loadJobs(ctx)
	}
	if s.view == viewGrid && s.modelsState == modelsUnknown {
		s.loadModels(ctx)
	}
	if s.jobID != "" && s.scoresJob != s.jobID {
		s.loadScores(ctx)
	}
	if s.jobID == "" {
		s.scores, s.scoresJob = nil, ""
	}
	if s.view == viewImage && s.dsID != "" && s.imgID != "" && (s.ed == nil || s.ed.dataset != s.dsID || s.ed.image != s.imgID) {
		s.openImage(ctx, s.dsID, s.imgID)
	}
}

// markGridReady records, once per page, when the grid first shows tiles.
func (s *Studio) markGridReady(ctx app.Context) {
	if s.gridReadyMarked || s.view != viewGrid || len(s.filtered()) == 0 {
		return
	}
	s.gridReadyMarked = true
	ctx.Defer(func(app.Context) {
		perf := app.Window().Get("performance")
		app.Window().Set("rdreGridReadyAt", perf.Call("now").Float())
		perf.Call("mark", "rdre-grid-ready")
	})
}

func (s *Studio) onPush(ctx app.Context, env protocol.Envelope) {
	switch env.Type {
	case protocol.TypeMaskUpdated:
		var rep protocol.MaskSavedReply
		if err := decodeLoose(env.Payload, &rep); err != nil {
			s.err = fmt.Sprintf("unreadable %s push: %v", env.Type, err)
			return
		}
		s.markAnnotated(rep.Dataset, rep.Image, !rep.Empty)
		if s.ed != nil && s.ed.dataset == rep.Dataset && s.ed.image == rep.Image {
			s.onRemoteSave(ctx, rep)
		}
	case protocol.TypeReviewUpdated:
		var r protocol.Review
		if err := decodeLoose(env.Payload, &r); err != nil {
			s.err = fmt.Sprintf("unreadable %s push: %v", env.Type, err)
			return
		}
		s.setLocalReview(r.Dataset, r.Image, r.State)
	case protocol.TypeClasses:
		// Another tab added, renamed, recoloured or deleted a class.
		var rep protocol.ClassesReply
		if err := decodeLoose(env.Payload, &rep); err != nil {
			s.err = fmt.Sprintf("unreadable %s push: %v", env.Type, err)
			return
		}
		if s.ed.ready() && s.ed.dataset == rep.Dataset {
			s.setClasses(s.ed, rep.Classes)
		}
	case protocol.TypeJobProgress, protocol.TypeJobMetrics, protocol.TypeJobDone:
		s.onJobPush(ctx, env)
	case protocol.TypeModels:
		s.onModelsPush(env)
	case protocol.TypeHello:
	case protocol.TypeError:
		var e protocol.ErrorPayload
		_ = decodeLoose(env.Payload, &e)
		s.err = fmt.Sprintf("server: %s: %s", e.Code, e.Message)
	}
}

func (s *Studio) markAnnotated(ds, img string, has bool) {
	if s.imgDSID != ds {
		return
	}
	for i := range s.images {
		if s.images[i].ID == img {
			s.images[i].HasWorkspaceMask = has
		}
	}
}

func (s *Studio) dataset(id string) *protocol.DatasetInfo {
	for i := range s.datasets {
		if s.datasets[i].ID == id {
			return &s.datasets[i]
		}
	}
	return nil
}

// filtered returns the grid's images after the filters and sort order.
func (s *Studio) filtered() []protocol.ImageInfo { return s.filteredBy(true) }

// filteredBy is filtered with or without the review state filter.
func (s *Studio) filteredBy(review bool) []protocol.ImageInfo {
	if s.imgDSID != s.dsID {
		return nil
	}
	out := make([]protocol.ImageInfo, 0, len(s.images))
	for _, im := range s.images {
		if s.fSplit != "" && im.Split != s.fSplit {
			continue
		}
		if s.fKind != "" && im.Kind != s.fKind {
			continue
		}
		if s.fMine && !im.HasWorkspaceMask {
			continue
		}
		if review && s.fReview != "" && s.reviewOf(im.ID) != s.fReview {
			continue
		}
		out = append(out, im)
	}
	score := func(id string) (float64, bool) { v, ok := s.scores[id]; return v, ok }
	switch s.fSort {
	case "score":
		sort.SliceStable(out, func(i, j int) bool {
			a, okA := score(out[i].ID)
			b, okB := score(out[j].ID)
			return okA && (!okB || a > b)
		})
	case "fp":
		// False positives first: defect-free images the model scores highest.
		sort.SliceStable(out, func(i, j int) bool {
			gi, gj := out[i].Kind == protocol.KindGood, out[j].Kind == protocol.KindGood
			if gi != gj {
				return gi
			}
			a, _ := score(out[i].ID)
			b, _ := score(out[j].ID)
			return a > b
		})
	case "fn":
		// Missed defects first: defective images the model scores lowest.
		sort.SliceStable(out, func(i, j int) bool {
			di, dj := out[i].Kind != protocol.KindGood, out[j].Kind != protocol.KindGood
			if di != dj {
				return di
			}
			a, _ := score(out[i].ID)
			b, _ := score(out[j].ID)
			return a < b
		})
	case "kind":
		sort.SliceStable(out, func(i, j int) bool { return out[i].Kind < out[j].Kind })
	case "annotated":
		sort.SliceStable(out, func(i, j int) bool { return out[i].HasWorkspaceMask && !out[j].HasWorkspaceMask })
	}
	return out
}

func (s *Studio) gridURL(split, kind, sortBy string, mine bool) string {
	q := url.Values{"id": {s.dsID}}
	if split != "" {
		q.Set("split", split)
	}
	if kind != "" {
		q.Set("kind", kind)
	}
	if sortBy != "" {
		q.Set("sort", sortBy)
	}
	if mine {
		q.Set("mine", "1")
	}
	if s.fReview != "" {
		q.Set("review", s.fReview)
	}
	if s.jobID != "" {
		q.Set("job", s.jobID)
	}
	return "/dataset?" + q.Encode()
}

func (s *Studio) imageURL(img string) string {
	q := url.Values{"dataset": {s.dsID}, "id": {img}}
	if s.jobID != "" {
		q.Set("job", s.jobID)
	}
	return "/image?" + q.Encode()
}

func apiURL(path string, kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return path + "?" + q.Encode()
}

// Render draws the header and the current view. The bars are always rendered and hidden when empty:
// go-app matches children by position, so a bar that came and went would rebuild the whole view (the
// editor's canvases included) each time.
func (s *Studio) Render() app.UI {
	return app.Div().Class("studio").Body(
		s.renderHeader(),
		s.renderFatal(),
		app.Div().Class("error-bar").Attr("data-testid", "error").Hidden(s.err == "").Body(
			app.Span().Text(s.err),
			app.Button().Class("link").Text("dismiss").OnClick(func(ctx app.Context, e app.Event) { s.err = "" }),
		),
		app.Div().Class("update-bar").Attr("data-testid", "update-available").Hidden(!s.updated).Body(
			app.Span().Text("A new version of RD-RE Studio is installed. "),
			app.Button().Text("Reload").OnClick(func(ctx app.Context, e app.Event) { ctx.Reload() }),
		),
		app.Main().Class("view").Body(s.renderView()),
	)
}

func (s *Studio) renderView() app.UI {
	switch s.view {
	case viewGrid:
		return s.renderGrid()
	case viewImage:
		return s.renderEditor()
	default:
		return s.renderDatasets()
	}
}

func (s *Studio) renderHeader() app.UI {
	crumbs := []app.UI{app.A().Class("brand").Href("/").Text("RD-RE Studio")}
	if s.view != viewDatasets && s.dsID != "" {
		name := s.dsID
		if d := s.dataset(s.dsID); d != nil {
			name = d.Name
		}
		crumbs = append(crumbs, app.Span().Class("sep").Text("/"), app.A().Href(s.gridURL(s.fSplit, s.fKind, s.fSort, s.fMine)).Text(name))
	}
	if s.view == viewImage {
		crumbs = append(crumbs, app.Span().Class("sep").Text("/"), app.Span().Class("crumb-image").Text(s.imgID))
	}
	state, label := "offline", "connecting…"
	switch {
	case s.fatal != "":
		state, label = "offline", "error"
	case s.connected:
		state, label = "online", "connected"
	}
	return app.Header().Class("topbar").Body(
		app.Nav().Class("crumbs").Body(crumbs...),
		app.Span().Class("conn "+state).Attr("data-testid", "connection").Text(label),
	)
}

func (s *Studio) renderDatasets() app.UI {
	if !s.loadedDS {
		return app.Div().Class("empty").Text("Loading datasets…")
	}
	return app.Section().Class("datasets").Body(
		app.H1().Text("Datasets"),
		app.If(len(s.datasets) == 0, func() app.UI {
			return app.P().Class("empty").Text("No dataset is registered. Start the server with --data DIR.")
		}),
		app.Ul().Class("dataset-list").Attr("data-testid", "dataset-list").Body(
			app.Range(s.datasets).Slice(func(i int) app.UI {
				d := s.datasets[i]
				return app.Li().Class("dataset").Body(
					app.A().Href("/dataset?"+url.Values{"id": {d.ID}}.Encode()).Attr("data-testid", "dataset-item").Attr("data-id", d.ID).Body(
						app.Span().Class("ds-name").Text(d.Name),
						app.Span().Class("ds-meta").Text(fmt.Sprintf("%d images · %s · %s", d.Images, d.Layout, strings.Join(d.Categories, ", "))),
						app.Span().Class("ds-kinds").Text(strings.Join(d.Kinds, " · ")),
						app.Span().Class("ds-root").Text(d.Root),
						app.If(s.dsCounts != nil, func() app.UI {
							c, ok := s.dsCounts[d.ID]
							if !ok {
								c = protocol.ReviewCounts{Images: d.Images, Unlabelled: d.Images}
							}
							return app.Span().Class("ds-review").Attr("data-testid", "ds-review").Text(countsText(c))
						}),
					),
					renderWarnings("dataset-warnings", "about this dataset's files", d.Warnings),
				)
			}),
		),
	)
}
