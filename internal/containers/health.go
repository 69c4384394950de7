package containers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/client"
)

// ExposedTCPPorts lists the TCP ports image declares (EXPOSE), sorted.
func (e *Engine) ExposedTCPPorts(ctx context.Context, image string) ([]int, error) {
	res, err := e.c.ImageInspect(ctx, image)
	if err != nil {
		return nil, err
	}
	if res.Config == nil {
		return nil, nil
	}
	var ports []int
	for p := range res.Config.ExposedPorts {
		num, proto, _ := strings.Cut(p, "/")
		if proto != "" && !strings.EqualFold(proto, "tcp") {
			continue
		}
		if n, err := strconv.Atoi(num); err == nil && n > 0 && n < 65536 {
			ports = append(ports, n)
		}
	}
	slices.Sort(ports)
	return ports, nil
}

// Address is the container's IP address on its (first) network.
func (e *Engine) Address(ctx context.Context, id string) (netip.Addr, error) {
	res, err := e.c.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return netip.Addr{}, err
	}
	if ns := res.Container.NetworkSettings; ns != nil {
		for _, ep := range ns.Networks {
			if ep != nil && ep.IPAddress.IsValid() {
				return ep.IPAddress, nil
			}
		}
	}
	return netip.Addr{}, errors.New("the container has no IP address")
}

// ErrUnreachable means the runner's host cannot reach the container's
// network at all (a rootless or remote engine), so waiting is pointless.
var ErrUnreachable = errors.New("the service's network is not reachable from the runner's host")

// WaitPort waits until something accepts TCP connections at addr:port,
// until ctx ends. A refused connection is retried; any other failure
// (timeout, no route) returns ErrUnreachable at once.
func WaitPort(ctx context.Context, addr netip.Addr, port int) error {
	target := netip.AddrPortFrom(addr, uint16(port)).String()
	for {
		d := net.Dialer{Timeout: time.Second}
		c, err := d.DialContext(ctx, "tcp", target)
		if err == nil {
			c.Close()
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("service %s did not accept connections: %w", target, context.Cause(ctx))
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("%w (%v)", ErrUnreachable, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("service %s did not accept connections: %w", target, context.Cause(ctx))
		case <-time.After(100 * time.Millisecond):
		}
	}
}
