package sensor

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// doorConns is what both front doors keep of their listeners and connections, so that
// Close can stop them all at once and Shutdown can drain them first.
type doorConns struct {
	mu     sync.Mutex
	closed bool
	lns    map[net.Listener]struct{}
	conns  map[net.Conn]struct{}
}

func newDoorConns() *doorConns {
	return &doorConns{lns: map[net.Listener]struct{}{}, conns: map[net.Conn]struct{}{}}
}

// serve accepts connections on l until closeAll and hands each to handle, in the accept
// loop's goroutine: handle starts the connection's own. Passing trouble of the machine
// (retryableAccept) is waited out, with a backoff, rather than ending the door.
func (d *doorConns) serve(l net.Listener, log *slog.Logger, handle func(net.Conn)) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		l.Close()
		return nil
	}
	d.lns[l] = struct{}{}
	d.mu.Unlock()
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			d.mu.Lock()
			closed := d.closed
			d.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return nil
			}
			if retryableAccept(err) {
				log.Warn("accepting a connection failed; retrying", "error", err, "after", delay)
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		handle(c)
	}
}

// track records c as open, for closeAll; false once the door is closed.
func (d *doorConns) track(c net.Conn) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return false
	}
	d.conns[c] = struct{}{}
	return true
}

func (d *doorConns) untrack(c net.Conn) {
	d.mu.Lock()
	delete(d.conns, c)
	d.mu.Unlock()
}

// closeAll stops every listener and closes every connection, and any later one.
func (d *doorConns) closeAll() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	var err error
	for l := range d.lns {
		if cerr := l.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) && err == nil {
			err = cerr
		}
		delete(d.lns, l)
	}
	for c := range d.conns {
		c.Close()
		delete(d.conns, c)
	}
	return err
}

// drain waits until busy says nothing is under way, or ctx is done; then it closes
// everything. It returns ctx's error if work was still under way at the deadline, which is
// logged with what names that work.
func (d *doorConns) drain(ctx context.Context, busy func() int, log *slog.Logger, what string) error {
	var err error
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for busy() > 0 && err == nil {
		select {
		case <-ctx.Done():
			err = ctx.Err()
			log.Warn("shutdown deadline reached; closing "+what+" still under way", "in_flight", busy())
		case <-tick.C:
		}
	}
	if cerr := d.closeAll(); err == nil {
		err = cerr
	}
	return err
}
