package managerclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	streamhttp "k8s.io/streaming/pkg/httpstream"
)

// PortForward is one port-forward connection to a pod through the API server
// (WebSocket, falling back to SPDY, as kubectl port-forward does). Each Dial
// opens a new stream pair on it, like one accepted local connection of
// kubectl port-forward.
//
// client-go's PortForwarder only forwards from a local listener; the daemon
// wants streams as net.Conns for gRPC's dialer, so this does what its
// handleConnection does (error stream, then data stream, same request ID)
// without the listener.
type PortForward struct {
	conn   streamhttp.Connection
	port   int
	nextID atomic.Int64
}

// DialPortForward connects to pod ns/name's port-forward subresource.
func DialPortForward(ctx context.Context, cfg *rest.Config, client kubernetes.Interface, ns, pod string, port int) (*PortForward, error) {
	u := client.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("portforward").URL()
	tr, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("port-forward to pod %s/%s: %w", ns, pod, err)
	}
	var dialer streamhttp.Dialer = spdy.NewDialerForStreaming(upgrader, &http.Client{Transport: tr}, http.MethodPost, u)
	ws, err := portforward.NewSPDYOverWebsocketDialerForStreaming(u, cfg)
	if err != nil {
		return nil, fmt.Errorf("port-forward to pod %s/%s: %w", ns, pod, err)
	}
	dialer = portforward.NewFallbackDialerForStreaming(ws, dialer, func(err error) bool {
		return streamhttp.IsUpgradeFailure(err) || streamhttp.IsHTTPSProxyError(err)
	})
	type result struct {
		conn streamhttp.Connection
		err  error
	}
	// Dial takes no context; bound it here and drop a late connection.
	done := make(chan result, 1)
	go func() {
		c, _, err := dialer.Dial(portforwardProtocolV1)
		done <- result{c, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("port-forward to pod %s/%s: %w", ns, pod, r.err)
		}
		return &PortForward{conn: r.conn, port: port}, nil
	case <-ctx.Done():
		go func() {
			if r := <-done; r.conn != nil {
				r.conn.Close()
			}
		}()
		return nil, fmt.Errorf("port-forward to pod %s/%s: %w", ns, pod, ctx.Err())
	}
}

// The port-forward subprotocol client-go's PortForwarder speaks.
const portforwardProtocolV1 = "portforward.k8s.io"

// Done is closed when the underlying connection is gone.
func (p *PortForward) Done() <-chan bool { return p.conn.CloseChan() }

// Close ends the connection and every stream on it.
func (p *PortForward) Close() error { return p.conn.Close() }

// Dial opens a stream to the pod's port. The address is ignored: it has the
// signature gRPC's WithContextDialer wants.
func (p *PortForward) Dial(ctx context.Context, _ string) (net.Conn, error) {
	id := strconv.FormatInt(p.nextID.Add(1), 10)
	h := http.Header{}
	h.Set(corev1.StreamType, corev1.StreamTypeError)
	h.Set(corev1.PortHeader, strconv.Itoa(p.port))
	h.Set(corev1.PortForwardRequestIDHeader, id)
	errStream, err := p.conn.CreateStream(h)
	if err != nil {
		return nil, fmt.Errorf("port-forward: open error stream: %w", err)
	}
	errStream.Close() // nothing to send on it
	h.Set(corev1.StreamType, corev1.StreamTypeData)
	data, err := p.conn.CreateStream(h)
	if err != nil {
		p.conn.RemoveStreams(errStream)
		return nil, fmt.Errorf("port-forward: open data stream: %w", err)
	}
	c := &streamConn{pf: p, data: data, errStream: errStream, remoteErr: make(chan struct{})}
	go c.watchErrors()
	return c, nil
}

// streamConn is a port-forward data stream as a net.Conn. The kubelet reports
// a failure to reach the port (nothing listening yet, say) on the error
// stream; it is returned from Read and Write from then on.
type streamConn struct {
	pf        *PortForward
	data      streamhttp.Stream
	errStream streamhttp.Stream
	remoteErr chan struct{}
	err       error // set before remoteErr is closed
	closeOnce sync.Once
}

func (c *streamConn) watchErrors() {
	msg, err := io.ReadAll(c.errStream)
	switch {
	case err != nil:
		c.err = fmt.Errorf("port-forward error stream: %w", err)
	case len(msg) > 0:
		c.err = fmt.Errorf("port-forward to port %d: %s", c.pf.port, msg)
	default:
		return
	}
	close(c.remoteErr)
	c.data.Reset()
}

func (c *streamConn) failure(err error) error {
	select {
	case <-c.remoteErr:
		return c.err
	default:
		return err
	}
}

func (c *streamConn) Read(b []byte) (int, error) {
	n, err := c.data.Read(b)
	if err != nil && !errors.Is(err, io.EOF) {
		err = c.failure(err)
	}
	return n, err
}

func (c *streamConn) Write(b []byte) (int, error) {
	n, err := c.data.Write(b)
	if err != nil {
		err = c.failure(err)
	}
	return n, err
}

func (c *streamConn) Close() error {
	c.closeOnce.Do(func() {
		c.data.Reset()
		c.pf.conn.RemoveStreams(c.data, c.errStream)
	})
	return nil
}

type pfAddr string

func (a pfAddr) Network() string { return "portforward" }
func (a pfAddr) String() string  { return string(a) }

func (c *streamConn) LocalAddr() net.Addr  { return pfAddr("local") }
func (c *streamConn) RemoteAddr() net.Addr { return pfAddr(fmt.Sprintf("pod:%d", c.pf.port)) }

// Deadlines are not supported by port-forward streams; gRPC does not need
// them (its keepalive detects a dead peer).
func (c *streamConn) SetDeadline(time.Time) error      { return nil }
func (c *streamConn) SetReadDeadline(time.Time) error  { return nil }
func (c *streamConn) SetWriteDeadline(time.Time) error { return nil }
