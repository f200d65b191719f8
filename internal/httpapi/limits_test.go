package httpapi_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/httpapi"
)

// serve serves h within the limits on a free port and returns its address.
func serve(t *testing.T, l httpapi.Limits, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := l.Server(h)
	go func() { _ = srv.Serve(l.Listener(ln)) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return ln.Addr().String()
}

// A body trickled a byte at a time is cut off once the read timeout passes, long before the
// client would finish sending it.
func TestSlowBodyIsCutOffByTheReadTimeout(t *testing.T) {
	t.Parallel()
	l := httpapi.DefaultLimits
	l.ReadTimeout = 500 * time.Millisecond
	addr := serve(t, l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusRequestTimeout)
			return
		}
		fmt.Fprint(w, "read it all")
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const bodyLen = 100 // at 50 ms a byte: 5 s, ten times the read timeout
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", bodyLen)
	sent := 0
	for ; sent < bodyLen; sent++ {
		if _, err := c.Write([]byte("x")); err != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err == nil && resp.StatusCode == http.StatusOK {
		t.Fatalf("the whole trickled body was read (%d bytes sent over %s): the read timeout did not hold", sent, time.Duration(sent)*50*time.Millisecond)
	}
}

// Past MaxConns a new connection is not served until an open one closes.
func TestConnectionsBeyondTheLimitWaitForAFreeSlot(t *testing.T) {
	t.Parallel()
	l := httpapi.DefaultLimits
	l.MaxConns = 2
	addr := serve(t, l, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") }))
	get := func(timeout time.Duration) error {
		client := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := client.Get("http://" + addr + "/")
		if err != nil {
			return err
		}
		return resp.Body.Close()
	}
	var held []net.Conn
	for range l.MaxConns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	if err := get(500 * time.Millisecond); err == nil {
		t.Fatalf("a request was served while %d connections held every slot", len(held))
	}
	_ = held[0].Close()
	if err := get(5 * time.Second); err != nil {
		t.Fatalf("a request after a slot was freed: %v", err)
	}
}
