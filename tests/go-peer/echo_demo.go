package main

// go-peer echo-demo: the Go reference echo client's demos (examples/echo/cmd/client)
// with short, bounded timings and checks, against any server of the reference's
// echo example (the Go one built with -tags server, or amring's).
//
// Only the message types of examples/echo are imported: go-peer is built without
// the `server` tag, so the echo handlers (examples/echo/handler.go) are not
// registered here and inbound echo messages are never dispatched to them.

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	am "github.com/adaptivemsg/adaptivemsg-go"
	"github.com/adaptivemsg/adaptivemsg-go/examples/echo"
)

// demoDeadline bounds a whole echo-demo run; every single wait is bounded too.
const demoDeadline = 20 * time.Second

type echoDemo struct {
	run    func(conn *am.Connection, addr string, others int) error
	others int // default for --others
}

var echoDemos = map[string]echoDemo{
	"timeout":     {demoTimeout, 0},
	"whoelse":     {demoWhoElse, 2},
	"whoelse_sub": {demoWhoElseSub, 3},
}

func runEchoDemo(args []string) int {
	fs := flag.NewFlagSet("echo-demo", flag.ExitOnError)
	addr := fs.String("addr", "", "echo server address (tcp://127.0.0.1:PORT)")
	cmd := fs.String("cmd", "", "timeout, whoelse or whoelse_sub")
	others := fs.Int("others", -1, "further clients (whoelse: kept open, default 2; whoelse_sub: come and go, default 3)")
	_ = fs.Parse(args)
	demo, ok := echoDemos[*cmd]
	if !ok {
		fmt.Printf("FAIL echo-demo: unknown --cmd %q (timeout, whoelse, whoelse_sub)\n", *cmd)
		return 2
	}
	n := *others
	if n < 0 {
		n = demo.others
	}
	time.AfterFunc(demoDeadline, func() {
		fmt.Printf("FAIL %s: not finished within %v\n", *cmd, demoDeadline)
		os.Exit(1)
	})
	conn, err := demoConnect(*addr)
	if err != nil {
		fmt.Printf("FAIL %s: connect %s: %v\n", *cmd, *addr, err)
		return 1
	}
	err = demo.run(conn, *addr, n)
	settle(conn)
	if err != nil {
		fmt.Printf("FAIL %s: %v\n", *cmd, err)
		return 1
	}
	fmt.Printf("ok   %s\n", *cmd)
	return 0
}

// demoConnect connects like the reference echo client (default codecs, recovery
// on), with a bounded dial.
func demoConnect(addr string) (*am.Connection, error) {
	return connect(addr, []am.CodecID{am.CodecMsgpackCompact, am.CodecMsgpackMap}, true)
}

// demoTimeout is the reference timeoutDemo with MessageTimeout{Secs: 1} (the
// server sleeps 1 s, then replies OkReply).
func demoTimeout(conn *am.Connection, _ string, _ int) error {
	stream := am.StreamAs[*am.OkReply](conn.NewStream())
	req := &echo.MessageTimeout{Secs: 1}

	fmt.Println("No timeout by default")
	if _, err := stream.SendRecv(req); err != nil {
		return fmt.Errorf("no timeout: %w", err)
	}
	fmt.Println("Recv OK")

	fmt.Println("Set timeout to 3s")
	stream.SetRecvTimeout(3 * time.Second)
	if _, err := stream.SendRecv(req); err != nil {
		return fmt.Errorf("timeout 3s: %w", err)
	}
	fmt.Println("Recv OK")

	fmt.Println("Set timeout to 300ms")
	stream.SetRecvTimeout(300 * time.Millisecond)
	_, err := stream.SendRecv(req)
	var timeoutErr am.ErrRecvTimeout
	switch {
	case err == nil:
		return errors.New("timeout 300ms: got a reply, want am.ErrRecvTimeout")
	case !errors.As(err, &timeoutErr):
		return fmt.Errorf("timeout 300ms: want am.ErrRecvTimeout, got %T: %v", err, err)
	}
	fmt.Printf("Recv timeout: %v\n", err)

	fmt.Println("Set back to no timeout")
	stream.SetRecvTimeout(0)
	start := time.Now()
	if _, err := stream.SendRecv(req); err != nil {
		return fmt.Errorf("no timeout again: %w", err)
	}
	fmt.Printf("Recv OK (after %v)\n", time.Since(start).Round(time.Millisecond))

	// Spec §9 note 22: the timed-out request's late reply stays queued, so the
	// SendRecv above may have returned it; then the last request's own reply is
	// still on its way. Drain it so nothing is in flight when the connection closes.
	stream.SetRecvTimeout(1500 * time.Millisecond)
	if _, err := stream.Recv(); err == nil {
		fmt.Println("late reply: the SendRecv above got the timed-out request's reply (spec §9 note 22); drained its own")
	} else if errors.As(err, &timeoutErr) {
		fmt.Println("late reply: none queued")
	} else {
		return fmt.Errorf("draining the last reply: %w", err)
	}
	return nil
}

func whoElse(conn *am.Connection) (string, int, error) {
	rep, err := am.SendRecvAs[*echo.WhoElseReply](conn, &echo.WhoElse{})
	if err != nil {
		return "", 0, err
	}
	return rep.Clients, len(strings.Fields(rep.Clients)), nil
}

// demoWhoElse queries the client list, opens `others` more connections and
// polls until the list has grown to at least 1+others entries. (A closed v3
// client stays listed for the server's DetachedTTL, spec §9 note 18, hence
// "at least".)
func demoWhoElse(conn *am.Connection, addr string, others int) error {
	clients, n, err := whoElse(conn)
	if err != nil {
		return fmt.Errorf("WhoElse: %w", err)
	}
	fmt.Printf("clients: %s\n", clients)
	if n < 1 {
		return fmt.Errorf("WhoElse listed %d clients, want at least 1 (this one)", n)
	}
	var open []*am.Connection
	defer func() {
		for _, c := range open {
			settle(c)
		}
	}()
	for i := 0; i < others; i++ {
		c, err := demoConnect(addr)
		if err != nil {
			return fmt.Errorf("other client %d: connect: %w", i+1, err)
		}
		open = append(open, c)
	}
	want := 1 + others
	deadline := time.Now().Add(5 * time.Second)
	for n < want {
		if time.Now().After(deadline) {
			return fmt.Errorf("WhoElse listed %d clients after 5s, want at least %d: %q", n, want, clients)
		}
		time.Sleep(50 * time.Millisecond)
		if clients, n, err = whoElse(conn); err != nil {
			return fmt.Errorf("WhoElse: %w", err)
		}
	}
	fmt.Printf("clients: %s\n", clients)
	fmt.Printf("%d clients listed, want at least %d\n", n, want)
	return nil
}

// demoWhoElseSub subscribes to new-client events on a new stream, lets `others`
// clients come and go one after another, and expects exactly one event each,
// with distinct non-empty addresses.
func demoWhoElseSub(conn *am.Connection, addr string, others int) error {
	stream := conn.NewStream()
	if _, err := am.SendRecvAs[*am.OkReply](stream, &echo.SubWhoElseEvent{}); err != nil {
		return fmt.Errorf("SubWhoElseEvent: %w", err)
	}
	fmt.Println("subscribed")
	done := make(chan error, 1)
	go func() {
		for i := 0; i < others; i++ {
			c, err := demoConnect(addr)
			if err != nil {
				done <- fmt.Errorf("other client %d: connect: %w", i+1, err)
				return
			}
			settle(c)
		}
		done <- nil
	}()
	events := am.StreamAs[*echo.WhoElseEvent](stream)
	events.SetRecvTimeout(5 * time.Second)
	seen := make(map[string]bool)
	for i := 0; i < others; i++ {
		evt, err := events.Recv()
		if err != nil {
			select {
			case cerr := <-done:
				if cerr != nil {
					return cerr
				}
			default:
			}
			return fmt.Errorf("got %d of %d events: %w", i, others, err)
		}
		fmt.Printf("event: new client %s\n", evt.Addr)
		if evt.Addr == "" {
			return fmt.Errorf("event %d has an empty addr", i+1)
		}
		if seen[evt.Addr] {
			return fmt.Errorf("event %d repeats addr %s", i+1, evt.Addr)
		}
		seen[evt.Addr] = true
	}
	if err := <-done; err != nil {
		return err
	}
	// Exactly `others`: nothing more may follow (no other client arrives meanwhile).
	events.SetRecvTimeout(300 * time.Millisecond)
	evt, err := events.Recv()
	if err == nil {
		return fmt.Errorf("unexpected extra event: new client %s", evt.Addr)
	}
	var timeoutErr am.ErrRecvTimeout
	if !errors.As(err, &timeoutErr) {
		return fmt.Errorf("after the events: %w", err)
	}
	fmt.Printf("%d events, distinct addrs\n", others)
	return nil
}
