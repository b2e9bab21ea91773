// go-peer: the Go reference (github.com/adaptivemsg/adaptivemsg-go) as a
// server and as a scenario-running client, for amring's interop tests and
// side-by-side benchmarks.
//
//	go-peer server --addr tcp://127.0.0.1:0 [--recovery]   prints "listening <addr>" then serves
//	go-peer client --addr ADDR --scenario all|echo|...     exits non-zero on any mismatch
//	go-peer echo-demo --addr ADDR --cmd timeout|whoelse|whoelse_sub [--others N]
//	                                                        the reference echo client's demos, checked
package main

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	am "github.com/adaptivemsg/adaptivemsg-go"

	"amring.test/go-peer/capmsg"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: go-peer server|client|echo-demo [flags]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "server":
		serve(os.Args[2:])
	case "client":
		os.Exit(runClient(os.Args[2:]))
	case "echo-demo":
		os.Exit(runEchoDemo(os.Args[2:]))
	default:
		fmt.Fprintln(os.Stderr, "unknown subcommand", os.Args[1])
		os.Exit(2)
	}
}

func serve(args []string) {
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	addr := fs.String("addr", "tcp://127.0.0.1:0", "listen address")
	recovery := fs.Bool("recovery", false, "enable v3 recovery")
	_ = fs.Parse(args)
	listen := *addr
	if strings.HasPrefix(listen, "tcp://") && strings.HasSuffix(listen, ":0") {
		// The reference cannot report an ephemeral port: pick one here.
		l, err := net.Listen("tcp", strings.TrimPrefix(listen, "tcp://"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		listen = "tcp://" + l.Addr().String()
		l.Close()
	}
	s := am.NewServer()
	if *recovery {
		s = s.WithRecovery(am.ServerRecoveryOptions{Enable: true})
	}
	fmt.Printf("listening %s\n", listen)
	if err := s.Serve(listen); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

type scenario struct {
	name string
	run  func(addr string, codecs []am.CodecID, recovery bool) error
}

var scenarios = []scenario{
	{"echo", scEcho},
	{"streams", scStreams},
	{"handler_error", scHandlerError},
	{"ok_reply", scOkReply},
	{"scalars", scScalars},
	{"payload_sizes", scPayloadSizes},
	{"subscribe", scSubscribe},
	{"once", scOnce},
}

func runClient(args []string) int {
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	addr := fs.String("addr", "", "server address")
	which := fs.String("scenario", "all", "scenario name or all")
	codecList := fs.String("codecs", "1,2", "codec preference list")
	recovery := fs.Bool("recovery", false, "request v3 recovery")
	_ = fs.Parse(args)
	var codecs []am.CodecID
	for _, c := range strings.Split(*codecList, ",") {
		var id int
		fmt.Sscanf(c, "%d", &id)
		codecs = append(codecs, am.CodecID(id))
	}
	known := *which == "all"
	for _, sc := range scenarios {
		known = known || *which == sc.name
	}
	if !known {
		// A typo or a peer built before the scenario existed must not pass silently.
		fmt.Printf("FAIL %s: unknown scenario\n", *which)
		return 2
	}
	failed := 0
	for _, sc := range scenarios {
		if *which != "all" && *which != sc.name {
			continue
		}
		if err := sc.run(*addr, codecs, *recovery); err != nil {
			fmt.Printf("FAIL %s: %v\n", sc.name, err)
			failed++
		} else {
			fmt.Printf("ok   %s\n", sc.name)
		}
	}
	if failed > 0 {
		return 1
	}
	return 0
}

func connect(addr string, codecs []am.CodecID, recovery bool) (*am.Connection, error) {
	c := am.NewClient().WithCodecs(codecs...).WithTimeout(5 * time.Second)
	if recovery {
		c = c.WithRecovery(am.ClientRecoveryOptions{Enable: true})
	}
	return c.Connect(addr)
}

// settle lets in-flight traffic finish before closing (spec §9 note 24).
func settle(c *am.Connection) {
	time.Sleep(50 * time.Millisecond)
	c.Close()
}

func scEcho(addr string, codecs []am.CodecID, rec bool) error {
	c, err := connect(addr, codecs, rec)
	if err != nil {
		return err
	}
	defer settle(c)
	for i := 0; i < 100; i++ {
		want := fmt.Sprintf("hello-%d", i)
		rep, err := am.SendRecvAs[*capmsg.EchoReply](c, &capmsg.EchoRequest{Text: want})
		if err != nil {
			return err
		}
		if rep.Text != want {
			return fmt.Errorf("echo: got %q want %q", rep.Text, want)
		}
	}
	return nil
}

func scStreams(addr string, codecs []am.CodecID, rec bool) error {
	c, err := connect(addr, codecs, rec)
	if err != nil {
		return err
	}
	defer settle(c)
	errs := make(chan error, 16)
	for s := 0; s < 16; s++ {
		st := c.NewStream()
		go func(s int) {
			for i := 0; i < 50; i++ {
				want := fmt.Sprintf("s%d-%d", s, i)
				rep, err := am.SendRecvAs[*capmsg.EchoReply](st, &capmsg.EchoRequest{Text: want})
				if err != nil {
					errs <- err
					return
				}
				if rep.Text != want {
					errs <- fmt.Errorf("stream %d: got %q want %q", s, rep.Text, want)
					return
				}
			}
			errs <- nil
		}(s)
	}
	for s := 0; s < 16; s++ {
		if err := <-errs; err != nil {
			return err
		}
	}
	return nil
}

func scHandlerError(addr string, codecs []am.CodecID, rec bool) error {
	c, err := connect(addr, codecs, rec)
	if err != nil {
		return err
	}
	defer settle(c)
	_, err = am.SendRecvAs[*capmsg.EchoReply](c, &capmsg.FailRequest{Why: "boom"})
	remote, ok := err.(am.ErrRemote)
	if !ok {
		return fmt.Errorf("want ErrRemote, got %T %v", err, err)
	}
	if remote.Code != "handler_error" || remote.Message != "failed: boom" {
		return fmt.Errorf("remote error: %+v", remote)
	}
	return nil
}

func scOkReply(addr string, codecs []am.CodecID, rec bool) error {
	c, err := connect(addr, codecs, rec)
	if err != nil {
		return err
	}
	defer settle(c)
	_, err = am.SendRecvAs[*am.OkReply](c, &capmsg.NilRequest{})
	return err
}

func scScalars(addr string, codecs []am.CodecID, rec bool) error {
	c, err := connect(addr, codecs, rec)
	if err != nil {
		return err
	}
	defer settle(c)
	want := &capmsg.Scalars{S: "s\x00é", B: true, I: -1 << 40, I8: -128, I16: 32767, I32: -2147483648,
		I64: 1<<63 - 1, U: 1<<64 - 1, U8: 255, U16: 65535, U32: 1<<32 - 1, U64: 1<<64 - 1,
		F32: 1.5, F64: -0.1, Raw: []byte{0xde, 0xad, 0xbe, 0xef}}
	got, err := am.SendRecvAs[*capmsg.ScalarsReply](c, want)
	if err != nil {
		return err
	}
	if fmt.Sprintf("%+v", capmsg.Scalars(*got)) != fmt.Sprintf("%+v", *want) {
		return fmt.Errorf("scalars: got %+v want %+v", *got, *want)
	}
	return nil
}

func scPayloadSizes(addr string, codecs []am.CodecID, rec bool) error {
	c, err := connect(addr, codecs, rec)
	if err != nil {
		return err
	}
	defer settle(c)
	for _, n := range []int32{0, 1, 255, 256, 65535, 65536, 1 << 20} {
		rep, err := am.SendRecvAs[*capmsg.BigReply](c, &capmsg.BigRequest{N: n})
		if err != nil {
			return fmt.Errorf("n=%d: %w", n, err)
		}
		if len(rep.Data) != int(n) || !bytes.Equal(rep.Data, make([]byte, n)) {
			return fmt.Errorf("n=%d: got %d bytes", n, len(rep.Data))
		}
	}
	return nil
}

func scSubscribe(addr string, codecs []am.CodecID, rec bool) error {
	c, err := connect(addr, codecs, rec)
	if err != nil {
		return err
	}
	defer settle(c)
	st := c.NewStream()
	if _, err := am.SendRecvAs[*am.OkReply](st, &capmsg.Subscribe{Count: 3}); err != nil {
		return err
	}
	ev := am.StreamAs[*capmsg.Event](st)
	for i := int32(1); i <= 3; i++ {
		e, err := ev.Recv()
		if err != nil {
			return err
		}
		if e.Seq != i {
			return fmt.Errorf("event %d: got seq %d", i, e.Seq)
		}
	}
	return nil
}

func scOnce(addr string, codecs []am.CodecID, _ bool) error {
	rep, err := am.SendRecvAs[*capmsg.EchoReply](am.Once(addr), &capmsg.EchoRequest{Text: "once"})
	if err != nil {
		return err
	}
	if rep.Text != "once" {
		return fmt.Errorf("once: got %q", rep.Text)
	}
	return nil
}
