//go:build !js

package ui

import (
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rdre-studio/studio/backend/server"
	"github.com/rdre-studio/studio/shared/mask"
	"github.com/rdre-studio/studio/shared/protocol"
)

// startStudioServer runs the real server (real bbolt workspace, real dataset index) on a small
// MVTec-layout category and returns its websocket URL.
func startStudioServer(t *testing.T) (*trackingListener, string) {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "part")
	for _, rel := range []string{"train/good/000.png", "test/good/000.png", "test/dent/000.png"} {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		m := image.NewGray(image.Rect(0, 0, 32, 24))
		for i := range m.Pix {
			m.Pix[i] = uint8(i * 7)
		}
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, m); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	gt := image.NewGray(image.Rect(0, 0, 32, 24))
	gt.SetGray(5, 5, color.Gray{255})
	gtPath := filepath.Join(root, "ground_truth/dent/000_mask.png")
	os.MkdirAll(filepath.Dir(gtPath), 0o755)
	f, err := os.Create(gtPath)
	if err != nil {
		t.Fatal(err)
	}
	png.Encode(f, gt)
	f.Close()

	srv, err := server.New(server.Config{Data: []string{root}, Workspace: filepath.Join(dir, "ws.db")})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	hs := httptest.NewUnstartedServer(srv.Handler())
	tl := &trackingListener{Listener: hs.Listener}
	hs.Listener = tl
	hs.Start()
	t.Cleanup(func() { tl.dropAll(); hs.Close(); srv.Close() })
	return tl, "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"
}

// trackingListener remembers accepted connections so a test can cut them, websockets included
// (httptest forgets a connection once the websocket upgrade hijacks it).
type trackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

func (l *trackingListener) dropAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
	l.conns = nil
}

func runClient(t *testing.T, url string) (*Client, chan bool, chan protocol.Envelope) {
	t.Helper()
	c := NewClient(url)
	conn := make(chan bool, 16)
	push := make(chan protocol.Envelope, 16)
	c.OnConnect(func(up bool) { conn <- up })
	c.OnPush(func(env protocol.Envelope) { push <- env })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return c, conn, push
}

func reqCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestClient_Request_RoundTrip(t *testing.T) {
	_, url := startStudioServer(t)
	c, _, _ := runClient(t, url)
	var ds protocol.DatasetsReply
	if err := c.Request(reqCtx(t), protocol.TypeDatasetsList, nil, &ds); err != nil {
		t.Fatal(err)
	}
	if len(ds.Datasets) != 1 || ds.Datasets[0].Images != 3 {
		t.Fatalf("datasets %+v, want one with 3 images", ds.Datasets)
	}
	var imgs protocol.ImagesReply
	if err := c.Request(reqCtx(t), protocol.TypeImagesList, protocol.ImagesListRequest{Dataset: ds.Datasets[0].ID}, &imgs); err != nil {
		t.Fatal(err)
	}
	if len(imgs.Images) != 3 {
		t.Fatalf("images %+v", imgs.Images)
	}
}

func TestClient_Request_ServerErrorIsTyped(t *testing.T) {
	_, url := startStudioServer(t)
	c, _, _ := runClient(t, url)
	err := c.Request(reqCtx(t), protocol.TypeImagesList, protocol.ImagesListRequest{Dataset: "no-such-dataset"}, &protocol.ImagesReply{})
	var se *ServerError
	if !errors.As(err, &se) || se.Code == "" || !strings.Contains(err.Error(), "images.list") {
		t.Fatalf("error %v (%T), want a *ServerError with a code", err, err)
	}
	err = c.Request(reqCtx(t), "no.such.type", map[string]int{"x": 1}, nil)
	if !errors.As(err, &se) || se.Code != protocol.CodeUnknown {
		t.Fatalf("unknown type: error %v, want code %s", err, protocol.CodeUnknown)
	}
}

func TestClient_Request_WaitsForConnection(t *testing.T) {
	c := NewClient("ws://127.0.0.1:1/ws") // nothing listens: Run would retry forever
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := c.Request(ctx, protocol.TypeDatasetsList, nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("request without a connection: %v, want the context's deadline", err)
	}
}

func TestClient_Run_ReconnectsAfterDrop(t *testing.T) {
	tl, url := startStudioServer(t)
	c, conn, _ := runClient(t, url)
	waitBool(t, conn, true)
	tl.dropAll()
	waitBool(t, conn, false)
	waitBool(t, conn, true)
	if err := c.Request(reqCtx(t), protocol.TypeDatasetsList, nil, &protocol.DatasetsReply{}); err != nil {
		t.Fatalf("request after reconnect: %v", err)
	}
}

func waitBool(t *testing.T, ch chan bool, want bool) {
	t.Helper()
	select {
	case got := <-ch:
		if got != want {
			t.Fatalf("connection state %v, want %v", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no connection state %v within 10s", want)
	}
}

func TestClient_OnPush_OtherClientsSave(t *testing.T) {
	_, url := startStudioServer(t)
	a, _, _ := runClient(t, url)
	b, _, pushB := runClient(t, url)
	var ds protocol.DatasetsReply
	if err := a.Request(reqCtx(t), protocol.TypeDatasetsList, nil, &ds); err != nil {
		t.Fatal(err)
	}
	// b must be connected before a saves, or it has nothing to be pushed to.
	if err := b.Request(reqCtx(t), protocol.TypeDatasetsList, nil, &protocol.DatasetsReply{}); err != nil {
		t.Fatal(err)
	}
	m, _ := mask.New(32, 24)
	m.Pix[3*32+4] = 1
	var saved protocol.MaskSavedReply
	req := protocol.MaskSaveRequest{Dataset: ds.Datasets[0].ID, Image: "test/good/000.png", Width: 32, Height: 24, RLE: m.Encode()}
	if err := a.Request(reqCtx(t), protocol.TypeMaskSave, req, &saved); err != nil {
		t.Fatal(err)
	}
	if saved.Version < 1 || saved.Empty {
		t.Fatalf("saved %+v", saved)
	}
	for {
		select {
		case env := <-pushB:
			if env.Type != protocol.TypeMaskUpdated {
				continue
			}
			var rep protocol.MaskSavedReply
			if err := decodeLoose(env.Payload, &rep); err != nil {
				t.Fatal(err)
			}
			if rep.Version != saved.Version || rep.Image != req.Image {
				t.Fatalf("push %+v, want version %d of %s", rep, saved.Version, req.Image)
			}
			return
		case <-time.After(10 * time.Second):
			t.Fatalf("client b got no %s push within 10s", protocol.TypeMaskUpdated)
		}
	}
}
