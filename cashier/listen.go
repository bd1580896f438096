package cashier

import (
	"fmt"
	"net"

	"golang.org/x/net/netutil"
)

// listen binds the cashier's address and caps the connections it serves at
// once at MaxConns.
//
// Past the cap, netutil.LimitListener stops accepting: a new connection
// waits in the kernel's accept queue (its TCP handshake done, nothing read)
// until a served one closes, and once that queue is full new connections
// are not taken at all. The cap counts every connection, /healthz, /readyz
// and /metrics included, so it also bounds the open files they use.
func listen(cfg Config) (net.Listener, error) {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w (set CAFE_HTTP_ADDR to a free address)", cfg.Addr, err)
	}
	return netutil.LimitListener(ln, cfg.MaxConns), nil
}
