// amgen-echo serves the echo handlers of ../../amgenecho: every message type
// of the amgen-go fixture (tests/amgen) comes back as it was decoded by the
// Go reference. A program of its own because its types share wire names with
// go-peer's vector types (am.capmsg.EchoRequest, am.capmsg.Scalars), and the
// reference's type registry is process-global.
//
//	amgen-echo -addr tcp://127.0.0.1:PORT
package main

import (
	"flag"
	"fmt"
	"os"

	am "github.com/adaptivemsg/adaptivemsg-go"

	_ "amring.test/go-peer/amgenecho/capmsg"
	_ "amring.test/go-peer/amgenecho/hello"
)

func main() {
	addr := flag.String("addr", "tcp://127.0.0.1:9000", "listen address")
	flag.Parse()
	if err := am.NewServer().Serve(*addr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
