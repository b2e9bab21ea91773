// Package capmsg holds the message types of the golden vectors (wire names
// am.capmsg.*) and the handlers the vector scenarios used (vectors/README.md).
package capmsg

import (
	"errors"
	"time"

	am "github.com/adaptivemsg/adaptivemsg-go"
)

type EchoRequest struct {
	Text string `am:"text"`
}

type EchoReply struct {
	Text string `am:"text"`
}

type FailRequest struct {
	Why string `am:"why"`
}

type NilRequest struct{}

type SlowRequest struct {
	Ms   int32  `am:"ms"`
	Text string `am:"text"`
}

type Subscribe struct {
	Count int32 `am:"count"`
}

type Event struct {
	Seq int32 `am:"seq"`
}

// PanicRequest makes its handler panic: the reference does not recover
// handler panics, so the whole server process dies (spec §5.4, §9 note 6).
type PanicRequest struct {
	Why string `am:"why"`
}

type BigRequest struct {
	N int32 `am:"n"`
}

type BigReply struct {
	Data []byte `am:"data"`
}

type Scalars struct {
	S   string  `am:"s"`
	B   bool    `am:"b"`
	I   int     `am:"i"`
	I8  int8    `am:"i8"`
	I16 int16   `am:"i16"`
	I32 int32   `am:"i32"`
	I64 int64   `am:"i64"`
	U   uint    `am:"u"`
	U8  uint8   `am:"u8"`
	U16 uint16  `am:"u16"`
	U32 uint32  `am:"u32"`
	U64 uint64  `am:"u64"`
	F32 float32 `am:"f32"`
	F64 float64 `am:"f64"`
	Raw []byte  `am:"raw"`
}

func (m *EchoRequest) Handle(*am.StreamContext) (am.Message, error) {
	return &EchoReply{Text: m.Text}, nil
}

func (m *FailRequest) Handle(*am.StreamContext) (am.Message, error) {
	return nil, errors.New("failed: " + m.Why)
}

func (m *NilRequest) Handle(*am.StreamContext) (am.Message, error) { return nil, nil }

func (m *SlowRequest) Handle(*am.StreamContext) (am.Message, error) {
	time.Sleep(time.Duration(m.Ms) * time.Millisecond)
	return &EchoReply{Text: m.Text}, nil
}

func (m *Subscribe) Handle(ctx *am.StreamContext) (am.Message, error) {
	count := m.Count
	err := ctx.NewTask(func(s *am.Stream[am.Message]) {
		time.Sleep(20 * time.Millisecond)
		for i := int32(1); i <= count; i++ {
			if s.Send(&Event{Seq: i}) != nil {
				return
			}
		}
	})
	return nil, err
}

// Handle panics with "panic request: " + Why.
func (m *PanicRequest) Handle(*am.StreamContext) (am.Message, error) {
	panic("panic request: " + m.Why)
}

func (m *BigRequest) Handle(*am.StreamContext) (am.Message, error) {
	return &BigReply{Data: make([]byte, m.N)}, nil
}

// ScalarsReply has the fields of Scalars. A distinct reply type is needed:
// dispatch is symmetric (spec §5.3), so a reply type with a handler would be
// handled by the client instead of reaching its SendRecv.
type ScalarsReply Scalars

// Handle echoes every field kind back through Go's codec.
func (m *Scalars) Handle(*am.StreamContext) (am.Message, error) {
	r := ScalarsReply(*m)
	return &r, nil
}

var (
	_ = am.MustRegisterGlobalType[EchoRequest]()
	_ = am.MustRegisterGlobalType[EchoReply]()
	_ = am.MustRegisterGlobalType[FailRequest]()
	_ = am.MustRegisterGlobalType[NilRequest]()
	_ = am.MustRegisterGlobalType[SlowRequest]()
	_ = am.MustRegisterGlobalType[Subscribe]()
	_ = am.MustRegisterGlobalType[Event]()
	_ = am.MustRegisterGlobalType[PanicRequest]()
	_ = am.MustRegisterGlobalType[BigRequest]()
	_ = am.MustRegisterGlobalType[BigReply]()
	_ = am.MustRegisterGlobalType[Scalars]()
	_ = am.MustRegisterGlobalType[ScalarsReply]()
)
