//go:build !js

package oip

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rdre-studio/studio/backend/inference"
)

// Options configures remote models.
type Options struct {
	// Batch is the images one request carries (the batch the server runs as one); 0 means
	// inference.DefaultBatch. Use the --batch of the local run whose maps should be equal: ONNX Runtime's
	// results depend on the batch an image runs in. It is lowered to the server's max_batch_size.
	Batch int
	// MaxInFlight bounds the requests in flight per endpoint; 0 means 2.
	MaxInFlight int
	// Timeout bounds one request; 0 means 2 minutes.
	Timeout time.Duration
	// GiveUp is how long a batch is retried after its first failure before the run fails; 0 means 5 minutes.
	GiveUp time.Duration
	// Retries is how many more times a request is sent after an endpoint answered it with a server error
	// (500, a garbled reply); 0 means 2, negative none. Unreachable endpoints are waited for until GiveUp.
	Retries int
	// Cooldown is the first pause of an endpoint that failed (doubled on each failure in a row, up to
	// MaxCooldown); 0 means 1 s and 30 s.
	Cooldown, MaxCooldown time.Duration
	// Sidecars are metadata files (MODEL.onnx.rdre.json, written by `rdre export-model`) for endpoints
	// whose metadata does not carry the rdre.* keys: matched to a model by their "name", or the only one to
	// the only model.
	Sidecars []string
	// Token is sent as "Authorization: Bearer" to every endpoint whose URL has no ?token= of its own.
	Token string
	// HTTPClient defaults to a client with a 10 s connect timeout.
	HTTPClient *http.Client
	Log        *slog.Logger
}

func (o *Options) defaults() {
	if o.Batch <= 0 {
		o.Batch = inference.DefaultBatch
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 2
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	if o.GiveUp <= 0 {
		o.GiveUp = 5 * time.Minute
	}
	if o.Retries == 0 {
		o.Retries = 2
	} else if o.Retries < 0 {
		o.Retries = 0
	}
	if o.Cooldown <= 0 {
		o.Cooldown = time.Second
	}
	if o.MaxCooldown <= 0 {
		o.MaxCooldown = 30 * time.Second
	}
	if o.MaxCooldown < o.Cooldown {
		o.MaxCooldown = o.Cooldown
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.HTTPClient == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		tr.MaxIdleConnsPerHost = o.MaxInFlight + 2
		o.HTTPClient = &http.Client{Transport: tr}
	}
}

// endpointURL is one --model-url.
type endpointURL struct {
	model   string // URL of the model: BASE/v2/models/NAME[/versions/V], query kept, token removed
	display string // model without the query, for messages
	name    string
	token   string
}

// ParseModelURL checks a model URL (http[s]://HOST:PORT[/PREFIX]/v2/models/NAME[/versions/V]) and returns the
// model's name. A ?token= is taken out of the URL and sent as a bearer token instead.
func ParseModelURL(raw string) (name string, err error) {
	u, err := parseModelURL(raw, "")
	return u.name, err
}

func parseModelURL(raw, token string) (endpointURL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return endpointURL{}, fmt.Errorf("model URL %q: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return endpointURL{}, fmt.Errorf("model URL %q: want http://HOST:PORT/v2/models/NAME", raw)
	}
	q := u.Query()
	if t := q.Get("token"); t != "" {
		token = t
		q.Del("token")
		u.RawQuery = q.Encode()
	}
	p := strings.TrimRight(u.Path, "/")
	i := strings.LastIndex(p, "/v2/models/")
	if i < 0 {
		return endpointURL{}, fmt.Errorf("model URL %s: the path has no /v2/models/NAME (want http://HOST:PORT/v2/models/NAME)", redact(u))
	}
	parts := strings.Split(p[i+len("/v2/models/"):], "/")
	if parts[0] == "" || !(len(parts) == 1 || len(parts) == 3 && parts[1] == "versions" && parts[2] != "") {
		return endpointURL{}, fmt.Errorf("model URL %s: want .../v2/models/NAME or .../v2/models/NAME/versions/VERSION", redact(u))
	}
	u.Path = p
	u.RawPath = ""
	disp := *u
	disp.RawQuery = ""
	return endpointURL{model: u.String(), display: disp.String(), name: parts[0], token: token}, nil
}

func redact(u *url.URL) string {
	c := *u
	c.RawQuery = ""
	c.User = nil
	return c.String()
}

// with returns the URL of a sub-resource of the model (suffix "/infer", "/config", "").
func (e endpointURL) with(suffix string) string {
	if suffix == "" {
		return e.model
	}
	u, err := url.Parse(e.model)
	if err != nil {
		return e.model + suffix
	}
	u.Path += suffix
	return u.String()
}

type epState int

const (
	stateUp      epState = iota
	stateDown            // out of rotation until retryAt
	stateProbing         // retryAt passed: one request checks it
)

func (s epState) String() string {
	return [...]string{"up", "down", "probing"}[s]
}

type endpoint struct {
	u        endpointURL
	state    epState
	inflight int
	retryAt  time.Time
	fails    int // failures in a row
	lastErr  string
	requests int64
	failures int64
}

// EndpointStatus describes one endpoint of a remote model.
type EndpointStatus struct {
	URL       string `json:"url"`
	State     string `json:"state"` // up, down or probing
	InFlight  int    `json:"in_flight"`
	Requests  int64  `json:"requests"` // requests answered
	Failures  int64  `json:"failures"`
	LastError string `json:"last_error,omitempty"`
}

// RemoteModel is a model served over the Open Inference Protocol by one or more endpoints. It implements
// inference.Predictor and is safe for concurrent use.
type RemoteModel struct {
	opt    Options
	log    *slog.Logger
	info   inference.Info
	S      int
	batch  int
	sha    string // the file's SHA-256 when known, for checking an endpoint that comes back
	client *http.Client
	seq    atomic.Uint64
	closed atomic.Bool

	mu      sync.Mutex
	eps     []*endpoint
	next    int
	changed chan struct{} // closed and replaced whenever a slot frees or an endpoint changes state
}

var _ inference.Predictor = (*RemoteModel)(nil)

// Open opens one remote model from the URLs of its endpoints (all naming the same model).
func Open(urls []string, opt Options) (*RemoteModel, error) {
	ms, err := OpenAll(urls, opt)
	if err != nil {
		return nil, err
	}
	if len(ms) != 1 {
		names := make([]string, len(ms))
		for i, m := range ms {
			names[i] = m.Name()
			m.Close()
		}
		return nil, fmt.Errorf("the model URLs name %d models (%s); give the URLs of one model", len(ms), strings.Join(names, ", "))
	}
	return ms[0], nil
}

// OpenAll opens the models of urls: URLs with the same model name are endpoints of one model, balanced
// round robin. Each model's metadata is read from every endpoint that answers (at least one must); the
// others start out of rotation and are tried later.
func OpenAll(urls []string, opt Options) ([]*RemoteModel, error) {
	opt.defaults()
	var order []string
	groups := map[string][]endpointURL{}
	for _, raw := range urls {
		u, err := parseModelURL(raw, opt.Token)
		if err != nil {
			return nil, err
		}
		if _, ok := groups[u.name]; !ok {
			order = append(order, u.name)
		}
		groups[u.name] = append(groups[u.name], u)
	}
	if len(order) == 0 {
		return nil, errors.New("no model URL given")
	}
	sidecars := map[string]*ModelMetadata{}
	var only *ModelMetadata
	for _, p := range opt.Sidecars {
		md, err := ReadSidecar(p)
		if err != nil {
			return nil, err
		}
		sidecars[md.Name] = md
		only = md
	}
	if len(opt.Sidecars) != 1 || len(order) != 1 {
		only = nil
	}
	var out []*RemoteModel
	for _, name := range order {
		sc := sidecars[name]
		if sc == nil {
			sc = only
		}
		m, err := openGroup(groups[name], sc, opt)
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// fetched is what one endpoint said about its model.
type fetched struct {
	md     *ModelMetadata
	params map[string]string
	err    error
}

func openGroup(urls []endpointURL, sidecar *ModelMetadata, opt Options) (*RemoteModel, error) {
	m := &RemoteModel{opt: opt, log: opt.Log, client: opt.HTTPClient, changed: make(chan struct{})}
	for _, u := range urls {
		m.eps = append(m.eps, &endpoint{u: u})
	}
	where := urls[0].display
	res := make([]fetched, len(urls))
	var wg sync.WaitGroup
	for i, u := range urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			md, err := m.metadata(u, min(opt.Timeout, 30*time.Second))
			res[i] = fetched{md: md, err: err}
			if err == nil {
				res[i].params = md.Parameters.strings()
			}
		}()
	}
	wg.Wait()
	first := -1
	var errs []string
	for i, r := range res {
		if r.err == nil && first < 0 {
			first = i
		}
		if r.err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", urls[i].display, r.err))
		}
	}
	if first < 0 {
		return nil, fmt.Errorf("open model %s: no endpoint answered: %s", where, strings.Join(errs, "; "))
	}
	where = urls[first].display
	md, params := res[first].md, res[first].params

	// Pre-processing metadata: the endpoint's parameters, else Triton's model configuration, else the sidecar.
	source := "the endpoint's model metadata"
	_, haveKeys := params[inference.KeyFormatVersion]
	_, haveMax := params[ParamMaxBatch]
	if !haveKeys || !haveMax {
		if cp, maxBatch, err := m.config(urls[first]); err == nil {
			if !haveKeys && cp[inference.KeyFormatVersion] != "" {
				for k, v := range cp {
					if _, ok := params[k]; !ok {
						params[k] = v
					}
				}
				haveKeys, source = true, "the endpoint's model configuration (GET .../config)"
			}
			if !haveMax && maxBatch > 0 {
				params[ParamMaxBatch] = strconv.Itoa(maxBatch)
			}
		}
	}
	if !haveKeys && sidecar != nil {
		for k, v := range sidecar.Parameters.strings() {
			if _, ok := params[k]; !ok || k == ParamSHA256 {
				params[k] = v
			}
		}
		source = "the sidecar of " + sidecar.Name
	}
	info, err := inference.ParseMetadata(params)
	if err != nil {
		hint := ""
		if !haveKeys && sidecar == nil {
			hint = " (the endpoint's metadata carries no rdre.* parameters and it has no model configuration that does: pass the sidecar MODEL.onnx.rdre.json that `rdre export-model` wrote, with --model-meta)"
		}
		return nil, fmt.Errorf("open model %s: %w: %v%s", where, inference.ErrContract, err, hint)
	}
	S := info.InputSize
	probe, err := checkMetadata(md, S)
	if err != nil {
		return nil, fmt.Errorf("open model %s: %w: %v", where, inference.ErrContract, err)
	}
	m.S, m.sha = S, params[ParamSHA256]

	// Every other endpoint that answered must serve the same model.
	for i, r := range res {
		if r.err != nil || i == first {
			continue
		}
		if err := m.sameModel(r.md, r.params); err != nil {
			return nil, fmt.Errorf("open model: %s and %s do not serve the same model: %v", where, urls[i].display, err)
		}
	}
	m.batch = opt.Batch
	if mb, err := strconv.Atoi(params[ParamMaxBatch]); err == nil && mb > 0 && mb < m.batch {
		m.log.Info("oip: batch lowered to the server's max_batch_size", "model", where, "batch", mb)
		m.batch = mb
	}

	// What the protocol added is not the file's metadata.
	for _, k := range []string{ParamSHA256, ParamMaxBatch, ParamDevice} {
		delete(info.Metadata, k)
	}
	info.Path = where
	info.SHA256 = m.sha
	if info.SHA256 == "" {
		// No file hash known: the model's identity in the workspace is its URL.
		h := sha256.Sum256([]byte("oip:" + where))
		info.SHA256 = hex.EncodeToString(h[:])
	}
	info.Device = "remote"
	disp := make([]string, len(urls))
	for i, u := range urls {
		disp[i] = u.display
	}
	info.DeviceReason = fmt.Sprintf("Open Inference Protocol, %d endpoint(s): %s", len(urls), strings.Join(disp, ", "))
	if d := params[ParamDevice]; d != "" {
		info.DeviceReason += "; server device " + d
	}
	info.DeviceReason += "; pre-processing metadata from " + source
	info.Batch = m.batch * opt.MaxInFlight * len(urls)
	m.info = info

	now := time.Now()
	for i, r := range res {
		if r.err != nil {
			ep := m.eps[i]
			ep.state, ep.fails, ep.retryAt, ep.lastErr = stateDown, 1, now.Add(opt.Cooldown), r.err.Error()
			m.log.Warn("oip: endpoint out of rotation until it answers", "model", where, "endpoint", ep.u.display, "err", r.err)
		}
	}
	if probe {
		// Variable output dimensions: one zero image through the graph, as inference.Open does.
		if _, _, _, err := m.infer(make([]float32, 3*S*S), 1); err != nil {
			return nil, fmt.Errorf("open model %s: %w: probe run with one %dx%d image: %v", where, inference.ErrContract, S, S, err)
		}
	}
	m.log.Info("remote model ready", "model", where, "name", m.Name(), "sha256", info.SHA256[:12], "input", S, "endpoints", len(urls), "batch", m.batch, "metadata", source)
	return m, nil
}

// checkMetadata checks an endpoint's tensors against the contract at input size S. A batch-only output
// reported as [-1, 1] (Triton's dims [1] with reshape []) is taken as [-1].
func checkMetadata(md *ModelMetadata, S int) (probe bool, err error) {
	conv := func(ts []TensorMetadata) []inference.TensorSpec {
		out := make([]inference.TensorSpec, len(ts))
		for i, t := range ts {
			shape := t.Shape
			if t.Name == inference.OutputScor && len(shape) == 2 && shape[0] == -1 && shape[1] == 1 {
				shape = shape[:1]
			}
			out[i] = inference.TensorSpec{Name: t.Name, Datatype: t.Datatype, Shape: shape}
		}
		return out
	}
	return inference.CheckContract(conv(md.Inputs), conv(md.Outputs), S)
}

// sameModel checks that another endpoint's metadata describes this model.
func (m *RemoteModel) sameModel(md *ModelMetadata, params map[string]string) error {
	if _, err := checkMetadata(md, m.S); err != nil {
		return err
	}
	if s, ok := params[inference.KeyInputSize]; ok && s != strconv.Itoa(m.S) {
		return fmt.Errorf("%s is %s, want %d", inference.KeyInputSize, s, m.S)
	}
	if sha := params[ParamSHA256]; sha != "" && m.sha != "" && sha != m.sha {
		return fmt.Errorf("sha256 %.12s, want %.12s", sha, m.sha)
	}
	return nil
}

// strings returns the parameters that have a text form.
func (p Parameters) strings() map[string]string {
	out := make(map[string]string, len(p))
	for k := range p {
		if v, ok := p.String(k); ok {
			out[k] = v
		}
	}
	return out
}

// get fetches a JSON document with a timeout.
func (m *RemoteModel) get(u endpointURL, suffix string, timeout time.Duration, v any) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.with(suffix), nil)
	if err != nil {
		return err
	}
	if u.token != "" {
		req.Header.Set("Authorization", "Bearer "+u.token)
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxHeaderBytes+1))
	if err != nil {
		return err
	}
	if len(raw) > maxHeaderBytes {
		return fmt.Errorf("GET %s: reply longer than %d bytes", u.with(suffix), maxHeaderBytes)
	}
	if resp.StatusCode != http.StatusOK {
		return &httpError{code: resp.StatusCode, msg: errorText(raw)}
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("GET %s: %w", u.with(suffix), err)
	}
	return nil
}

func (m *RemoteModel) metadata(u endpointURL, timeout time.Duration) (*ModelMetadata, error) {
	var md ModelMetadata
	if err := m.get(u, "", timeout, &md); err != nil {
		return nil, err
	}
	return &md, nil
}

// config reads Triton's model configuration (GET .../config): the string parameters and max_batch_size.
func (m *RemoteModel) config(u endpointURL) (map[string]string, int, error) {
	var cfg struct {
		MaxBatchSize json.Number `json:"max_batch_size"`
		Parameters   map[string]struct {
			StringValue string `json:"string_value"`
		} `json:"parameters"`
	}
	if err := m.get(u, "/config", min(m.opt.Timeout, 30*time.Second), &cfg); err != nil {
		return nil, 0, err
	}
	out := make(map[string]string, len(cfg.Parameters))
	for k, v := range cfg.Parameters {
		out[k] = v.StringValue
	}
	mb, _ := strconv.Atoi(cfg.MaxBatchSize.String())
	return out, mb, nil
}

// httpError is a reply with an error status.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.code, e.msg) }

func errorText(raw []byte) string {
	var er ErrorResponse
	if json.Unmarshal(raw, &er) == nil && er.Error != "" {
		return truncate(er.Error, 500)
	}
	return truncate(strings.TrimSpace(string(raw)), 300)
}

// Name is the model's name on its endpoints.
func (m *RemoteModel) Name() string { return m.eps[0].u.name }

// Info describes the model (see inference.Predictor).
func (m *RemoteModel) Info() inference.Info { return m.info.Clone() }

// RequestBatch is the number of images one request carries.
func (m *RemoteModel) RequestBatch() int { return m.batch }

// Endpoints reports the state of every endpoint.
func (m *RemoteModel) Endpoints() []EndpointStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]EndpointStatus, len(m.eps))
	for i, ep := range m.eps {
		out[i] = EndpointStatus{URL: ep.u.display, State: ep.state.String(), InFlight: ep.inflight, Requests: ep.requests, Failures: ep.failures, LastError: ep.lastErr}
	}
	return out
}

// Close ends the model: later calls fail. Requests in flight finish.
func (m *RemoteModel) Close() error {
	if !m.closed.Swap(true) {
		m.mu.Lock()
		m.signal()
		m.mu.Unlock()
		m.client.CloseIdleConnections()
	}
	return nil
}

var errClosed = errors.New("model is closed")

// Predict pre-processes the images here, runs them remotely in requests of RequestBatch images (the
// batches a local model with that batch size runs), in parallel over the endpoints, and post-processes the
// outputs here.
func (m *RemoteModel) Predict(imgs []image.Image) ([]inference.Prediction, error) {
	S, mean, std := m.S, m.info.Mean, m.info.Std
	parts, err := m.chunks(len(imgs), func(lo, hi int) (any, error) {
		input, sizes, err := inference.PreprocessBatch(imgs[lo:hi], S, mean, std, lo)
		if err != nil {
			return nil, err
		}
		maps, rds, scores, err := m.infer(input, hi-lo)
		if err != nil {
			return nil, err
		}
		return inference.PostprocessBatch(maps, rds, scores, sizes, S, lo)
	})
	if err != nil {
		return nil, err
	}
	out := make([]inference.Prediction, 0, len(imgs))
	for _, p := range parts {
		out = append(out, p.([]inference.Prediction)...)
	}
	return out, nil
}

// RunTensor runs a pre-processed input (n x 3 x S x S) remotely, in requests of RequestBatch images.
func (m *RemoteModel) RunTensor(input []float32, n int) (maps, rdMaps, scores []float32, err error) {
	per := 3 * m.S * m.S
	if n < 1 || len(input) != n*per {
		return nil, nil, nil, fmt.Errorf("run model %s: input has %d values, want %d x 3 x %d x %d", m.info.Path, len(input), n, m.S, m.S)
	}
	type out struct{ maps, rds, scores []float32 }
	parts, err := m.chunks(n, func(lo, hi int) (any, error) {
		a, b, c, err := m.infer(input[lo*per:hi*per], hi-lo)
		return out{a, b, c}, err
	})
	if err != nil {
		return nil, nil, nil, err
	}
	for _, p := range parts {
		o := p.(out)
		maps, rdMaps, scores = append(maps, o.maps...), append(rdMaps, o.rds...), append(scores, o.scores...)
	}
	return maps, rdMaps, scores, nil
}

// chunks runs f over [0, n) in pieces of m.batch, as many at a time as the endpoints have slots, and
// returns the results in order, or the first error in order.
func (m *RemoteModel) chunks(n int, f func(lo, hi int) (any, error)) ([]any, error) {
	if m.closed.Load() {
		return nil, fmt.Errorf("run model %s: %w", m.info.Path, errClosed)
	}
	b := m.batch
	count := (n + b - 1) / b
	res := make([]any, count)
	errs := make([]error, count)
	sem := make(chan struct{}, m.opt.MaxInFlight*len(m.eps))
	var wg sync.WaitGroup
	for c := 0; c < count; c++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			res[c], errs[c] = f(c*b, min((c+1)*b, n))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return res, nil
}

// outcome classifies how a request ended, for the endpoint's state and for the retry.
type outcome int

const (
	ok          outcome = iota
	unreachable         // the endpoint did not answer (or answered 404/408/429/502/503/504): out of rotation, retry elsewhere
	serverError         // it answered with a server error (500, a garbled reply): retry a few times
	fatal               // the request itself is wrong, or the model's output is: no retry
	mismatch            // the endpoint now serves another model: out of rotation for long
)

// infer runs one request of n pre-processed images, retrying over the endpoints.
func (m *RemoteModel) infer(input []float32, n int) (maps, rdMaps, scores []float32, err error) {
	S := int64(m.S)
	req := &InferRequest{
		ID:     strconv.FormatUint(m.seq.Add(1), 10),
		Inputs: []Tensor{FP32Tensor(inference.InputName, []int64{int64(n), 3, S, S}, input)},
	}
	for _, name := range []string{inference.OutputMap, inference.OutputScor, inference.OutputRD} {
		req.Outputs = append(req.Outputs, RequestedOutput{Name: name, Parameters: Parameters{ParamBinaryData: true}})
	}
	body, hlen, err := EncodeInferRequest(req)
	if err != nil {
		return nil, nil, nil, err
	}
	var firstFail time.Time
	var lastErr error
	serverErrors := 0
	for {
		if m.closed.Load() {
			return nil, nil, nil, fmt.Errorf("run model %s: %w", m.info.Path, errClosed)
		}
		ctx, cancel := context.Background(), context.CancelFunc(func() {})
		if !firstFail.IsZero() {
			ctx, cancel = context.WithDeadline(ctx, firstFail.Add(m.opt.GiveUp))
		}
		var ep *endpoint
		var probe bool
		if err = ctx.Err(); err == nil {
			ep, probe, err = m.acquire(ctx)
		}
		cancel()
		if errors.Is(err, errClosed) {
			return nil, nil, nil, fmt.Errorf("run model %s: %w", m.info.Path, errClosed)
		}
		if err != nil {
			return nil, nil, nil, fmt.Errorf("run model %s on %d images: no endpoint answered for %s (%s); last error: %v",
				m.info.Path, n, m.opt.GiveUp, m.stateSummary(), lastErr)
		}
		var oc outcome
		if probe {
			oc, err = m.verify(ep)
		}
		if err == nil {
			maps, rdMaps, scores, oc, err = m.post(ep, body, hlen, n)
		}
		m.release(ep, oc, err)
		switch oc {
		case ok:
			return maps, rdMaps, scores, nil
		case fatal:
			return nil, nil, nil, err
		case serverError:
			serverErrors++
			if serverErrors > m.opt.Retries {
				return nil, nil, nil, fmt.Errorf("%w (failed %d times)", err, serverErrors)
			}
		}
		lastErr = err
		if firstFail.IsZero() {
			firstFail = time.Now()
		}
	}
}

// verify checks, before an endpoint that failed takes requests again, that it serves the same model.
func (m *RemoteModel) verify(ep *endpoint) (outcome, error) {
	md, err := m.metadata(ep.u, min(m.opt.Timeout, 30*time.Second))
	if err != nil {
		return unreachable, fmt.Errorf("%s: model metadata: %w", ep.u.display, err)
	}
	if err := m.sameModel(md, md.Parameters.strings()); err != nil {
		return mismatch, fmt.Errorf("%s no longer serves the model: %v", ep.u.display, err)
	}
	return ok, nil
}

// post sends one inference request to ep and checks the reply.
func (m *RemoteModel) post(ep *endpoint, body []byte, hlen, n int) (maps, rdMaps, scores []float32, oc outcome, err error) {
	where := ep.u.display
	ctx, cancel := context.WithTimeout(context.Background(), m.opt.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.u.with("/infer"), bytes.NewReader(body))
	if err != nil {
		return nil, nil, nil, fatal, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	if hlen >= 0 {
		req.Header.Set(HeaderContentLength, strconv.Itoa(hlen))
	}
	if ep.u.token != "" {
		req.Header.Set("Authorization", "Bearer "+ep.u.token)
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, nil, nil, unreachable, fmt.Errorf("%s: %w", where, err)
	}
	defer resp.Body.Close()
	S := m.S
	// The reply: three FP32 outputs, as binary (4 bytes an element) or, from a server that ignores
	// binary_data, as JSON (about 16 bytes an element).
	limit := int64(maxHeaderBytes) + 20*int64(n)*int64(2*S*S+1)
	var buf bytes.Buffer
	if resp.ContentLength > 0 && resp.ContentLength <= limit {
		buf.Grow(int(resp.ContentLength))
	}
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, limit+1)); err != nil {
		return nil, nil, nil, unreachable, fmt.Errorf("%s: read reply: %w", where, err)
	}
	if int64(buf.Len()) > limit {
		return nil, nil, nil, serverError, fmt.Errorf("%s: reply longer than %d bytes", where, limit)
	}
	if resp.StatusCode != http.StatusOK {
		e := fmt.Errorf("%s: %w", where, &httpError{code: resp.StatusCode, msg: errorText(buf.Bytes())})
		switch resp.StatusCode {
		case http.StatusNotFound, http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return nil, nil, nil, unreachable, e
		case http.StatusUnprocessableEntity:
			return nil, nil, nil, fatal, fmt.Errorf("run model %s: %w: %v", where, inference.ErrNonFinite, e)
		}
		if resp.StatusCode >= 500 {
			return nil, nil, nil, serverError, e
		}
		return nil, nil, nil, fatal, fmt.Errorf("run model %s: %w", where, e)
	}
	hl, err := HeaderLength(resp.Header)
	if err != nil {
		return nil, nil, nil, serverError, fmt.Errorf("%s: %w", where, err)
	}
	r, err := DecodeInferResponse(buf.Bytes(), hl)
	if err != nil {
		return nil, nil, nil, serverError, fmt.Errorf("%s: %w", where, err)
	}
	get := func(name string, shapes ...[]int64) ([]float32, error) {
		for i := range r.Outputs {
			t := &r.Outputs[i]
			if t.Name != name {
				continue
			}
			okShape := false
			for _, s := range shapes {
				okShape = okShape || equalShape(t.Shape, s)
			}
			if t.Datatype != "FP32" || !okShape {
				return nil, fmt.Errorf("run model %s: output %s is %s %v, want FP32 %v", where, name, t.Datatype, t.Shape, shapes[0])
			}
			return t.Float32s()
		}
		return nil, fmt.Errorf("run model %s: the reply has no output %s", where, name)
	}
	N, SS := int64(n), int64(S)
	if maps, err = get(inference.OutputMap, []int64{N, 1, SS, SS}); err == nil {
		if scores, err = get(inference.OutputScor, []int64{N}, []int64{N, 1}); err == nil {
			rdMaps, err = get(inference.OutputRD, []int64{N, 1, SS, SS})
		}
	}
	if err != nil {
		return nil, nil, nil, fatal, err
	}
	if err := inference.CheckOutputs(where, maps, rdMaps, scores, n, S); err != nil {
		return nil, nil, nil, fatal, err
	}
	return maps, rdMaps, scores, ok, nil
}

func equalShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// acquire picks the next endpoint round robin that is up and has a free slot, or whose pause is over (it
// is then probed, by one request at a time); it waits for one while there is none.
func (m *RemoteModel) acquire(ctx context.Context) (*endpoint, bool, error) {
	for {
		m.mu.Lock()
		if m.closed.Load() {
			m.mu.Unlock()
			return nil, false, errClosed
		}
		now := time.Now()
		var wake time.Time
		for i := range m.eps {
			k := (m.next + i) % len(m.eps)
			ep := m.eps[k]
			switch ep.state {
			case stateUp:
				if ep.inflight < m.opt.MaxInFlight {
					ep.inflight++
					m.next = k + 1
					m.mu.Unlock()
					return ep, false, nil
				}
			case stateDown:
				if !now.Before(ep.retryAt) {
					ep.state = stateProbing
					ep.inflight++
					m.next = k + 1
					m.mu.Unlock()
					return ep, true, nil
				}
				if wake.IsZero() || ep.retryAt.Before(wake) {
					wake = ep.retryAt
				}
			}
		}
		ch := m.changed
		m.mu.Unlock()
		var timer *time.Timer
		var fire <-chan time.Time
		if !wake.IsZero() {
			timer = time.NewTimer(time.Until(wake))
			fire = timer.C
		}
		var err error
		select {
		case <-ch:
		case <-fire:
		case <-ctx.Done():
			err = ctx.Err()
		}
		if timer != nil {
			timer.Stop()
		}
		if err != nil {
			return nil, false, err
		}
	}
}

// release returns ep's slot and updates its state from the outcome of its request.
func (m *RemoteModel) release(ep *endpoint, oc outcome, err error) {
	if oc == unreachable {
		// Pooled connections to an endpoint that went away are dead: do not reuse them for its return.
		defer m.client.CloseIdleConnections()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ep.inflight--
	switch oc {
	case ok, serverError, fatal:
		// It answered: it is up (a wrong request or a model error says nothing against the endpoint).
		if oc == ok {
			ep.requests++
		} else {
			ep.failures++
			ep.lastErr = err.Error()
		}
		if ep.state != stateUp {
			m.log.Info("oip: endpoint back in rotation", "model", m.info.Path, "endpoint", ep.u.display)
		}
		ep.state, ep.fails = stateUp, 0
	case unreachable, mismatch:
		ep.failures++
		ep.lastErr = err.Error()
		if ep.state == stateDown {
			break // already out: requests sent before it fell fail too, and say nothing new
		}
		ep.fails++
		pause := m.opt.MaxCooldown
		if oc == unreachable {
			pause = m.opt.Cooldown << min(ep.fails-1, 20)
			if pause > m.opt.MaxCooldown || pause <= 0 {
				pause = m.opt.MaxCooldown
			}
		}
		if ep.state == stateUp {
			m.log.Warn("oip: endpoint out of rotation", "model", m.info.Path, "endpoint", ep.u.display, "retry_in", pause, "err", err)
		} else if oc == mismatch {
			m.log.Error("oip: endpoint serves another model; it stays out of rotation", "model", m.info.Path, "endpoint", ep.u.display, "err", err)
		}
		ep.state, ep.retryAt = stateDown, time.Now().Add(pause)
	}
	m.signal()
}

// signal wakes every acquire; m.mu is held.
func (m *RemoteModel) signal() {
	close(m.changed)
	m.changed = make(chan struct{})
}

func (m *RemoteModel) stateSummary() string {
	var parts []string
	for _, s := range m.Endpoints() {
		parts = append(parts, s.URL+" "+s.State)
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// ReadSidecar reads a metadata sidecar (MODEL.onnx.rdre.json): the model metadata JSON with the model's
// rdre.* metadata as parameters.
func ReadSidecar(path string) (*ModelMetadata, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("model metadata sidecar: %w", err)
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var md ModelMetadata
	if err := d.Decode(&md); err != nil {
		return nil, fmt.Errorf("model metadata sidecar %s: %w", path, err)
	}
	if md.Name == "" || len(md.Parameters) == 0 {
		return nil, fmt.Errorf("model metadata sidecar %s: want the JSON `rdre export-model` writes (a \"name\" and the model's rdre.* metadata as \"parameters\")", path)
	}
	return &md, nil
}

// SidecarPath is where the metadata sidecar of a model file is written.
func SidecarPath(model string) string { return model + ".rdre.json" }
