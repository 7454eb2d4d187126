//go:build !js

package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rdre-studio/studio/backend/cli/version"
	"github.com/rdre-studio/studio/shared/protocol"
)

const (
	sendQueue    = 256 // frames queued per client before it counts as stuck
	writeTimeout = 10 * time.Second
	pingEvery    = 30 * time.Second
)

type hub struct {
	s       *Server
	up      websocket.Upgrader
	mu      sync.Mutex
	clients map[uint64]*conn
	nextID  atomic.Uint64
	ctx     context.Context
	cancel  context.CancelFunc
}

func newHub(s *Server) *hub {
	ctx, cancel := context.WithCancel(context.Background())
	h := &hub{s: s, clients: map[uint64]*conn{}, ctx: ctx, cancel: cancel}
	h.up = websocket.Upgrader{
		ReadBufferSize:    32 << 10,
		WriteBufferSize:   32 << 10,
		CheckOrigin:       sameOrigin,
		EnableCompression: true,
	}
	return h
}

// sameOrigin accepts requests without an Origin (non-browser clients, which cannot be driven by another
// site) and browser requests whose Origin is this very host; anything else could be a page on another
// site trying to use the user's local server.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil {
		return false
	}
	// The scheme matters too: a file:// page or a browser extension is not this server's page.
	return (u.Scheme == "http" || u.Scheme == "https") && strings.EqualFold(u.Host, r.Host)
}

type conn struct {
	id   uint64
	h    *hub
	ws   *websocket.Conn
	send chan protocol.Envelope
	done chan struct{}
	once sync.Once
}

func (c *conn) ID() uint64 { return c.id }

func (c *conn) Send(env protocol.Envelope) {
	select {
	case c.send <- env:
	case <-c.done:
	default:
		c.h.s.log.Warn("websocket client too slow, disconnecting", "client", c.id)
		c.close()
	}
}

func (c *conn) close() {
	c.once.Do(func() {
		close(c.done)
		c.ws.Close()
		c.h.mu.Lock()
		delete(c.h.clients, c.id)
		c.h.mu.Unlock()
	})
}

func (h *hub) serveWS(w http.ResponseWriter, r *http.Request) {
	ws, err := h.up.Upgrade(w, r, nil)
	if err != nil {
		// Upgrade has already answered with an HTTP error.
		h.s.log.Warn("websocket upgrade refused", "remote", r.RemoteAddr, "origin", r.Header.Get("Origin"), "err", err)
		return
	}
	ws.SetReadLimit(protocol.MaxFrameBytes) // on the wire; readMessage bounds the decompressed message too
	c := &conn{id: h.nextID.Add(1), h: h, ws: ws, send: make(chan protocol.Envelope, sendQueue), done: make(chan struct{})}
	h.mu.Lock()
	h.clients[c.id] = c
	h.mu.Unlock()
	go c.writeLoop()
	hello, _ := protocol.New("", protocol.TypeHello, protocol.Hello{Server: "rdre-studio " + version.Version, Protocol: protocol.Version})
	c.Send(hello)
	c.readLoop()
}

func (c *conn) writeLoop() {
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	for {
		select {
		case env := <-c.send:
			c.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
			if err := c.ws.WriteJSON(env); err != nil {
				c.close()
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeTimeout)); err != nil {
				c.close()
				return
			}
		case <-c.done:
			return
		}
	}
}

// readMessage reads the next message, at most protocol.MaxFrameBytes of it AFTER decompression: the
// socket's read limit counts the bytes on the wire, and with per-message compression 16 MiB of them can
// inflate to gigabytes. A binary message is not read at all (the next read skips it).
func (c *conn) readMessage() (typ int, frame []byte, err error) {
	typ, r, err := c.ws.NextReader()
	if err != nil || typ != websocket.TextMessage {
		return typ, nil, err
	}
	frame, err = io.ReadAll(io.LimitReader(r, protocol.MaxFrameBytes+1))
	if err == nil && len(frame) > protocol.MaxFrameBytes {
		err = errMessageTooBig
	}
	return typ, frame, err
}

var errMessageTooBig = errors.New("websocket message over the size limit")

func (c *conn) readLoop() {
	defer c.close()
	for {
		typ, frame, err := c.readMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) || errors.Is(err, errMessageTooBig) {
				c.h.s.log.Warn("websocket message over the size limit, closing", "client", c.id, "limit", protocol.MaxFrameBytes)
				msg := websocket.FormatCloseMessage(websocket.CloseMessageTooBig, fmt.Sprintf("message larger than %d bytes", protocol.MaxFrameBytes))
				c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
			}
			return
		}
		if typ != websocket.TextMessage {
			c.sendError("", "", protocol.CodeMalformed, "binary frames are not part of the protocol; send JSON text frames")
			continue
		}
		env, err := protocol.Decode(frame)
		if err != nil {
			c.sendError("", "", protocol.CodeMalformed, err.Error())
			continue
		}
		if env.V != protocol.Version {
			c.sendError(env.ID, env.Type, protocol.CodeVersion, fmt.Sprintf("protocol version %d not spoken; this server speaks %d", env.V, protocol.Version))
			continue
		}
		c.h.s.dispatch(c.h.ctx, c, env)
	}
}

func (c *conn) sendError(id, reqType, code, msg string) {
	env, _ := protocol.New(id, protocol.TypeError, protocol.ErrorPayload{Code: code, Message: msg, RequestType: reqType})
	c.Send(env)
}

// broadcast sends env to every client but the one with ID except (0 = none).
func (h *hub) broadcast(env protocol.Envelope, except uint64) {
	h.mu.Lock()
	targets := make([]*conn, 0, len(h.clients))
	for id, c := range h.clients {
		if id != except {
			targets = append(targets, c)
		}
	}
	h.mu.Unlock()
	for _, c := range targets {
		c.Send(env)
	}
}

func (h *hub) closeAll() {
	h.cancel()
	h.mu.Lock()
	cs := make([]*conn, 0, len(h.clients))
	for _, c := range h.clients {
		cs = append(cs, c)
	}
	h.mu.Unlock()
	for _, c := range cs {
		c.close()
	}
}
