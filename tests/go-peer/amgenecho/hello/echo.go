// Package hello declares the amgen-go fixture's hello types
// (tests/amgen/api/hello/message.go, a copy of the reference's
// examples/hello/message.go) once more with an echo handler each, like
// ../capmsg. Wire names am.hello.<Type>.
package hello

import (
	am "github.com/adaptivemsg/adaptivemsg-go"

	src "amring.test/amgen/api/hello"
)

// HelloRequest is src.HelloRequest with an echo handler.
type HelloRequest src.HelloRequest

// Handle sends the value back.
func (m *HelloRequest) Handle(*am.StreamContext) (am.Message, error) { return m, nil }

// HelloReply is src.HelloReply with an echo handler.
type HelloReply src.HelloReply

// Handle sends the value back.
func (m *HelloReply) Handle(*am.StreamContext) (am.Message, error) { return m, nil }

var (
	_ = am.MustRegisterGlobalType[HelloRequest]()
	_ = am.MustRegisterGlobalType[HelloReply]()
)
