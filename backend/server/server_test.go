//go:build !js

package server

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rdre-studio/studio/backend/internal/testenv"
	"github.com/rdre-studio/studio/shared/mask"
	"github.com/rdre-studio/studio/shared/protocol"
)

// newTestServer starts a real server on the demo dataset with a fresh workspace file.
func newTestServer(t *testing.T, token string) (*Server, *httptest.Server) {
	t.Helper()
	s, err := New(Config{Data: []string{testenv.Demo(t)}, Workspace: filepath.Join(t.TempDir(), "ws.db"), Token: token})
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() { hs.Close(); s.Close() })
	return s, hs
}

type wsClient struct {
	t  *testing.T
	ws *websocket.Conn
}

func dial(t *testing.T, hs *httptest.Server, hdr http.Header) *wsClient {
	t.Helper()
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"
	ws, resp, err := websocket.DefaultDialer.Dial(url, hdr)
	if err != nil {
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", url, err, code)
	}
	t.Cleanup(func() { ws.Close() })
	c := &wsClient{t: t, ws: ws}
	if hello := c.read(); hello.Type != protocol.TypeHello {
		t.Fatalf("first frame %q, want hello", hello.Type)
	}
	return c
}

func (c *wsClient) send(id, typ string, payload any) {
	c.t.Helper()
	env, err := protocol.New(id, typ, payload)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.ws.WriteJSON(env); err != nil {
		c.t.Fatalf("send %s: %v", typ, err)
	}
}

func (c *wsClient) read() protocol.Envelope {
	c.t.Helper()
	c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	var env protocol.Envelope
	if err := c.ws.ReadJSON(&env); err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return env
}

func (c *wsClient) call(id, typ string, payload any, dst any) protocol.Envelope {
	c.t.Helper()
	c.send(id, typ, payload)
	env := c.read()
	if env.ID != id {
		c.t.Fatalf("reply id %q, want %q", env.ID, id)
	}
	if dst != nil && env.Type != protocol.TypeError {
		if err := json.Unmarshal(env.Payload, dst); err != nil {
			c.t.Fatalf("decode %s: %v", env.Type, err)
		}
	}
	return env
}

func errorOf(t *testing.T, env protocol.Envelope) protocol.ErrorPayload {
	t.Helper()
	if env.Type != protocol.TypeError {
		t.Fatalf("got %s, want an error", env.Type)
	}
	var e protocol.ErrorPayload
	if err := json.Unmarshal(env.Payload, &e); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestServer_Websocket_RoundTrip(t *testing.T) {
	_, hs := newTestServer(t, "")
	c := dial(t, hs, nil)

	var dss protocol.DatasetsReply
	c.call("1", protocol.TypeDatasetsList, nil, &dss)
	if len(dss.Datasets) != 1 || dss.Datasets[0].Images == 0 {
		t.Fatalf("datasets: %+v", dss)
	}
	dsID := dss.Datasets[0].ID

	var imgs protocol.ImagesReply
	c.call("2", protocol.TypeImagesList, protocol.ImagesListRequest{Dataset: dsID}, &imgs)
	var good, defect protocol.ImageInfo
	for _, im := range imgs.Images {
		if im.Split == protocol.SplitTest && im.Kind == protocol.KindGood && good.ID == "" {
			good = im
		}
		if im.Split == protocol.SplitTest && im.Kind != protocol.KindGood && im.MaskID != "" && defect.ID == "" {
			defect = im
		}
	}
	if good.ID == "" || defect.ID == "" {
		t.Fatalf("demo dataset lacks a good or a masked test image: %d images", len(imgs.Images))
	}

	// The dataset's own mask comes back with its class index.
	var gt protocol.MaskReply
	c.call("3", protocol.TypeMaskGet, protocol.MaskGetRequest{Dataset: dsID, Image: defect.ID}, &gt)
	if gt.Source != "dataset" {
		t.Fatalf("mask source %q, want dataset", gt.Source)
	}
	m, err := mask.Decode(gt.RLE)
	if err != nil || m.Count() == 0 {
		t.Fatalf("dataset mask: %v, %d pixels", err, m.Count())
	}

	// A drawn mask on a good image is stored as version 1, then read back exactly.
	var none protocol.MaskReply
	c.call("4", protocol.TypeMaskGet, protocol.MaskGetRequest{Dataset: dsID, Image: good.ID}, &none)
	if none.Source != "none" {
		t.Fatalf("good image mask source %q", none.Source)
	}
	drawn, _ := mask.New(none.Width, none.Height)
	for i := 0; i < 50; i++ {
		drawn.Pix[i*none.Width+i] = 1
	}
	var saved protocol.MaskSavedReply
	env := c.call("5", protocol.TypeMaskSave, protocol.MaskSaveRequest{Dataset: dsID, Image: good.ID, Width: drawn.W, Height: drawn.H, RLE: drawn.Encode()}, &saved)
	if env.Type != protocol.TypeMaskSaved || saved.Version != 1 || saved.Empty {
		t.Fatalf("save: %s %+v", env.Type, saved)
	}
	var back protocol.MaskReply
	c.call("6", protocol.TypeMaskGet, protocol.MaskGetRequest{Dataset: dsID, Image: good.ID}, &back)
	bm, err := mask.Decode(back.RLE)
	if err != nil || back.Version != 1 || back.Source != "workspace" || bm.Count() != 50 {
		t.Fatalf("read back: %+v err %v", back, err)
	}

	// The good image now counts as a defect of the drawn class.
	c.call("6b", protocol.TypeImagesList, protocol.ImagesListRequest{Dataset: dsID}, &imgs)
	for _, im := range imgs.Images {
		if im.ID == good.ID && (im.Kind == protocol.KindGood || im.DatasetKind != protocol.KindGood || !im.HasWorkspaceMask) {
			t.Fatalf("after drawing on a good image: %+v", im)
		}
	}

	// A second client is told about a save by the first.
	c2 := dial(t, hs, nil)
	c.call("7", protocol.TypeMaskSave, protocol.MaskSaveRequest{Dataset: dsID, Image: good.ID, BaseVersion: 1, Width: drawn.W, Height: drawn.H, RLE: drawn.Encode()}, &saved)
	upd := c2.read()
	if upd.Type != protocol.TypeMaskUpdated {
		t.Fatalf("second client got %s, want mask.updated", upd.Type)
	}
}

func TestServer_Websocket_BadInput(t *testing.T) {
	_, hs := newTestServer(t, "")
	c := dial(t, hs, nil)
	var dss protocol.DatasetsReply
	c.call("1", protocol.TypeDatasetsList, nil, &dss)
	dsID := dss.Datasets[0].ID

	// Not JSON: an error, and the connection stays usable.
	c.ws.WriteMessage(websocket.TextMessage, []byte("{not json"))
	if e := errorOf(t, c.read()); e.Code != protocol.CodeMalformed {
		t.Fatalf("malformed: code %q", e.Code)
	}
	if e := errorOf(t, c.call("2", "no.such.type", nil, nil)); e.Code != protocol.CodeUnknown || !strings.Contains(e.Message, "no.such.type") {
		t.Fatalf("unknown type: %+v", e)
	}
	c.ws.WriteJSON(protocol.Envelope{V: 99, ID: "3", Type: protocol.TypeDatasetsList})
	if e := errorOf(t, c.read()); e.Code != protocol.CodeVersion {
		t.Fatalf("version: %+v", e)
	}
	if e := errorOf(t, c.call("4", protocol.TypeImagesList, map[string]any{"dataset": dsID, "bogus": 1}, nil)); e.Code != protocol.CodeBadInput {
		t.Fatalf("unknown field: %+v", e)
	}
	// Paths are never trusted: an id that leaves the root is just not found.
	for _, id := range []string{"../../etc/passwd", "/etc/passwd", "test/../../x.png"} {
		if e := errorOf(t, c.call("5", protocol.TypeMaskGet, protocol.MaskGetRequest{Dataset: dsID, Image: id}, nil)); e.Code != protocol.CodeNotFound {
			t.Fatalf("hostile id %q: %+v", id, e)
		}
	}
	// A mask of the wrong size is refused with both sizes named, and nothing is stored.
	var imgs protocol.ImagesReply
	c.call("6", protocol.TypeImagesList, protocol.ImagesListRequest{Dataset: dsID}, &imgs)
	small, _ := mask.New(3, 3)
	e := errorOf(t, c.call("7", protocol.TypeMaskSave, protocol.MaskSaveRequest{Dataset: dsID, Image: imgs.Images[0].ID, Width: 3, Height: 3, RLE: small.Encode()}, nil))
	if e.Code != protocol.CodeBadInput || !strings.Contains(e.Message, "3x3") {
		t.Fatalf("wrong size: %+v", e)
	}
	if e := errorOf(t, c.call("8", protocol.TypeMaskSave, protocol.MaskSaveRequest{Dataset: dsID, Image: imgs.Images[0].ID, RLE: []byte("garbage")}, nil)); e.Code != protocol.CodeBadInput {
		t.Fatalf("corrupt rle: %+v", e)
	}
	var hist protocol.MaskVersionsReply
	c.call("9", protocol.TypeMaskHistory, protocol.MaskGetRequest{Dataset: dsID, Image: imgs.Images[0].ID}, &hist)
	if len(hist.Versions) != 0 {
		t.Fatalf("refused saves left versions: %+v", hist.Versions)
	}
}

func TestServer_Websocket_Oversized(t *testing.T) {
	_, hs := newTestServer(t, "")
	c := dial(t, hs, nil)
	big := make([]byte, protocol.MaxFrameBytes+1024)
	for i := range big {
		big[i] = 'a'
	}
	c.ws.WriteMessage(websocket.TextMessage, big)
	c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err := c.ws.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Fatalf("oversized frame: got %v, want close 1009", err)
	}
}

func TestServer_Auth_Token(t *testing.T) {
	_, hs := newTestServer(t, "s3cret")
	resp, err := http.Get(hs.URL + "/api/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: HTTP %d", resp.StatusCode)
	}
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"
	if _, resp, err := websocket.DefaultDialer.Dial(url, nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("websocket without token accepted: %v", err)
	}
	dial(t, hs, http.Header{"Authorization": {"Bearer s3cret"}})
}

func TestServer_Websocket_Origin(t *testing.T) {
	_, hs := newTestServer(t, "")
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"
	_, resp, err := websocket.DefaultDialer.Dial(url, http.Header{"Origin": {"http://evil.example"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin accepted: %v", err)
	}
	dial(t, hs, http.Header{"Origin": {hs.URL}})
}

func TestServer_HTTP_Images(t *testing.T) {
	s, hs := newTestServer(t, "")
	id := s.DatasetIDs()[0]
	ds, _ := s.Dataset(id)
	var defect protocol.ImageInfo
	for _, im := range ds.Images() {
		if im.MaskID != "" {
			defect = im
			break
		}
	}
	for _, tc := range []struct {
		path, ctype string
		code        int
	}{
		{"/api/image?dataset=" + id + "&id=" + defect.ID, "image/png", 200},
		{"/api/thumb?dataset=" + id + "&id=" + defect.ID + "&size=64", "image/jpeg", 200},
		{"/api/gt?dataset=" + id + "&id=" + defect.ID, "image/png", 200},
		{"/api/export?dataset=" + id, "application/zip", 200},
		{"/api/export?dataset=" + id + "&format=coco", "application/zip", 200},
		{"/api/export?dataset=" + id + "&format=yolo", "", 400},
		{"/api/image?dataset=" + id + "&id=../../../etc/passwd", "", 404},
		{"/api/image?dataset=nope&id=" + defect.ID, "", 404},
		{"/api/thumb?dataset=" + id + "&id=" + defect.ID + "&size=999999", "", 400},
	} {
		resp, err := http.Get(hs.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code || (tc.ctype != "" && resp.Header.Get("Content-Type") != tc.ctype) {
			t.Errorf("%s: HTTP %d %s, want %d %s", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), tc.code, tc.ctype)
		}
	}
}

func TestServer_Export_ZipHasMasks(t *testing.T) {
	s, hs := newTestServer(t, "")
	id := s.DatasetIDs()[0]
	resp, err := http.Get(hs.URL + "/api/export?dataset=" + id)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("export: HTTP %d %v", resp.StatusCode, err)
	}
	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatalf("export is not a zip: %v", err)
	}
	masks := 0
	for _, f := range zr.File {
		if strings.Contains(f.Name, "/ground_truth/") && strings.HasSuffix(f.Name, "_mask.png") {
			masks++
		}
	}
	if masks != 24 {
		t.Fatalf("zip holds %d masks, want the demo's 24", masks)
	}
}

// TestServer_Handler_RefusesForeignHost: with AllowedHosts from the listener (as `rdre serve` sets them), a
// request naming another Host (a rebinding attacker's page) is refused on every route, the websocket
// included, while the server's own names work; Origins of another scheme are refused too.
func TestServer_Handler_RefusesForeignHost(t *testing.T) {
	hs := httptest.NewUnstartedServer(nil)
	s, err := New(Config{Data: []string{testenv.Demo(t)}, Workspace: filepath.Join(t.TempDir(), "ws.db"), AllowedHosts: HostsFor(hs.Listener.Addr(), []string{"studio.lan"})})
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = s.Handler()
	hs.Start()
	t.Cleanup(func() { hs.Close(); s.Close() })
	port := hs.Listener.Addr().(*net.TCPAddr).Port
	get := func(host, path string) int {
		req, _ := http.NewRequest("GET", hs.URL+path, nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), "evil") {
			t.Errorf("reply echoes the Host: %q", body)
		}
		return resp.StatusCode
	}
	for _, host := range []string{"evil.example:" + strconv.Itoa(port), "evil.example", "127.0.0.1.evil.example:" + strconv.Itoa(port)} {
		for _, p := range []string{"/api/healthz", "/api/export?dataset=x", "/ws"} {
			if code := get(host, p); code != http.StatusMisdirectedRequest {
				t.Errorf("Host %s %s: HTTP %d, want 421", host, p, code)
			}
		}
	}
	for _, host := range []string{"127.0.0.1:" + strconv.Itoa(port), "localhost:" + strconv.Itoa(port), "LOCALHOST:" + strconv.Itoa(port), "studio.lan:" + strconv.Itoa(port)} {
		if code := get(host, "/api/healthz"); code != 200 {
			t.Errorf("Host %s: HTTP %d, want 200", host, code)
		}
	}
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"
	for origin, ok := range map[string]bool{"http://" + hs.Listener.Addr().String(): true, "file://" + hs.Listener.Addr().String(): false, "null": false, "http://evil.example": false} {
		ws, _, err := websocket.DefaultDialer.Dial(url, http.Header{"Origin": {origin}})
		if ws != nil {
			ws.Close()
		}
		if (err == nil) != ok {
			t.Errorf("Origin %s: dial err %v, want accepted=%v", origin, err, ok)
		}
	}
	if HostsFor(&net.TCPAddr{IP: net.IPv4zero, Port: 80}, nil) != nil {
		t.Error("an unspecified listen address must not restrict Host (the token guards it)")
	}
}

// TestServer_Handler_BoundsEchoAndNosniff: an oversized id is refused without being quoted back, and
// every reply (errors and downloads) carries nosniff.
func TestServer_Handler_BoundsEchoAndNosniff(t *testing.T) {
	_, hs := newTestServer(t, "")
	long := strings.Repeat("A", 100<<10)
	resp, err := http.Get(hs.URL + "/api/image?dataset=x&id=" + long)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestURITooLong || len(body) > 200 {
		t.Errorf("oversized id: HTTP %d, %d bytes back", resp.StatusCode, len(body))
	}
	for _, p := range []string{"/api/healthz", "/api/image?dataset=x&id=<script>"} {
		resp, err := http.Get(hs.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff header", p)
		}
	}
}
