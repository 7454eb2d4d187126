package ui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/rdre-studio/studio/shared/protocol"
)

// Client is the browser's websocket connection to the server. It stays connected for the life of the
// page: when the connection drops it redials with exponential backoff, and requests made while it is
// down wait for the next connection (or their context). Replies are matched to requests by envelope
// ID; everything else the server sends is a push and goes to the push handler.
type Client struct {
	url string

	mu        sync.Mutex
	conn      *websocket.Conn
	ready     chan struct{} // closed while connected
	pending   map[string]chan protocol.Envelope
	seq       int
	prefix    string
	onPush    func(protocol.Envelope)
	onConnect func(connected bool)
}

// ErrDisconnected is returned for requests whose connection dropped before their reply came.
var ErrDisconnected = errors.New("connection to the server lost")

// ServerError is an error reply of the server.
type ServerError struct{ protocol.ErrorPayload }

func (e *ServerError) Error() string { return fmt.Sprintf("server: %s: %s", e.Code, e.Message) }

// NewClient returns a client for the websocket at url; Run connects it.
func NewClient(url string) *Client {
	return &Client{
		url:     url,
		ready:   make(chan struct{}),
		pending: map[string]chan protocol.Envelope{},
		// Request IDs carry a random per-page prefix: the server may push another tab's message with
		// that tab's request ID, which must never match one of ours.
		prefix: strconv.FormatUint(rand.Uint64(), 36) + "-",
	}
}

// OnPush sets the handler of pushed messages; it runs on the client's read goroutine.
func (c *Client) OnPush(f func(protocol.Envelope)) {
	c.mu.Lock()
	c.onPush = f
	c.mu.Unlock()
}

// OnConnect sets a handler called with true on every (re)connection and false on every drop.
func (c *Client) OnConnect(f func(bool)) {
	c.mu.Lock()
	c.onConnect = f
	c.mu.Unlock()
}

// Run keeps the client connected until ctx ends.
func (c *Client) Run(ctx context.Context) {
	backoff := 250 * time.Millisecond
	for ctx.Err() == nil {
		conn, _, err := websocket.Dial(ctx, c.url, nil)
		if err != nil {
			app.Logf("websocket dial %s failed: %v (retry in %v)", c.url, err, backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff + time.Duration(rand.Int64N(int64(backoff/4)))):
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 250 * time.Millisecond
		conn.SetReadLimit(protocol.MaxFrameBytes)
		c.mu.Lock()
		c.conn = conn
		close(c.ready)
		onConnect := c.onConnect
		c.mu.Unlock()
		if onConnect != nil {
			onConnect(true)
		}
		err = c.readLoop(ctx, conn)
		app.Logf("websocket closed: %v", err)
		c.mu.Lock()
		c.conn = nil
		c.ready = make(chan struct{})
		for id, ch := range c.pending {
			close(ch)
			delete(c.pending, id)
		}
		onConnect = c.onConnect
		c.mu.Unlock()
		if onConnect != nil {
			onConnect(false)
		}
		conn.CloseNow()
	}
}

func (c *Client) readLoop(ctx context.Context, conn *websocket.Conn) error {
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			return err
		}
		env, err := protocol.Decode(data)
		if err != nil {
			app.Logf("websocket: unreadable frame: %v", err)
			continue
		}
		c.mu.Lock()
		ch, ok := c.pending[env.ID]
		if ok && env.Type != protocol.TypeMaskUpdated {
			delete(c.pending, env.ID)
		} else {
			ok = false
		}
		push := c.onPush
		c.mu.Unlock()
		if ok {
			ch <- env
			continue
		}
		if push != nil {
			push(env)
		}
	}
}

// Request sends a request and waits for its reply, decoding the reply's payload into reply (which may
// be nil). An error reply of the server comes back as a *ServerError.
func (c *Client) Request(ctx context.Context, typ string, payload, reply any) error {
	var conn *websocket.Conn
	for {
		c.mu.Lock()
		conn = c.conn
		ready := c.ready
		c.mu.Unlock()
		if conn != nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not connected: %w", typ, ctx.Err())
		case <-ready:
		}
	}
	c.mu.Lock()
	c.seq++
	id := c.prefix + strconv.Itoa(c.seq)
	ch := make(chan protocol.Envelope, 1)
	c.pending[id] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}

	env, err := protocol.New(id, typ, payload)
	if err != nil {
		forget()
		return err
	}
	frame, err := json.Marshal(env)
	if err != nil {
		forget()
		return fmt.Errorf("encode %s: %w", typ, err)
	}
	if err := conn.Write(ctx, websocket.MessageText, frame); err != nil {
		forget()
		return fmt.Errorf("send %s: %w", typ, err)
	}
	select {
	case <-ctx.Done():
		forget()
		return fmt.Errorf("%s: %w", typ, ctx.Err())
	case rep, ok := <-ch:
		if !ok {
			return fmt.Errorf("%s: %w", typ, ErrDisconnected)
		}
		if rep.Type == protocol.TypeError {
			var e ServerError
			if err := json.Unmarshal(rep.Payload, &e.ErrorPayload); err != nil {
				return fmt.Errorf("%s: unreadable error reply: %w", typ, err)
			}
			return fmt.Errorf("%s: %w", typ, &e)
		}
		if reply != nil && len(rep.Payload) > 0 {
			if err := json.Unmarshal(rep.Payload, reply); err != nil {
				return fmt.Errorf("%s: decode %s reply: %w", typ, rep.Type, err)
			}
		}
		return nil
	}
}
