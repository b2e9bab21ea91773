//go:generate go run github.com/adaptivemsg/adaptivemsg-go/cmd/amgen-go

// Package capmsg: the types of tests/vectors/codec.json ("types") that
// amgen-go can translate, with the same fields, Go types and am tags, so the
// Rust code it emits can be checked against the golden bytes.
//
// Left out because amgen-go refuses them: TimeMsg (time.Time: "qualified
// types are not supported"), Embedded (embedded field), TagVariants (an
// untagged field), Thing (package directory suffix-go is not a Rust module
// name). Left out because the generated code cannot express them: Named
// (WireName() method), Local (package main), Hidden / HiddenInner /
// WithHiddenInner (unexported fields, which amgen-go drops).
package capmsg

type StrMsg struct {
	V string `am:"v"`
}

type BytesMsg struct {
	V []byte `am:"v"`
}

type BoolMsg struct {
	V bool `am:"v"`
}

type IntMsg struct {
	V int `am:"v"`
}

type UintMsg struct {
	V uint `am:"v"`
}

type I8Msg struct {
	V int8 `am:"v"`
}

type I16Msg struct {
	V int16 `am:"v"`
}

type I32Msg struct {
	V int32 `am:"v"`
}

type I64Msg struct {
	V int64 `am:"v"`
}

type U8Msg struct {
	V uint8 `am:"v"`
}

type U16Msg struct {
	V uint16 `am:"v"`
}

type U32Msg struct {
	V uint32 `am:"v"`
}

type U64Msg struct {
	V uint64 `am:"v"`
}

type F32Msg struct {
	V float32 `am:"v"`
}

type F64Msg struct {
	V float64 `am:"v"`
}

type OptStrMsg struct {
	V *string `am:"v"`
}

type OptI64Msg struct {
	V *int64 `am:"v"`
}

type ListStrMsg struct {
	V []string `am:"v"`
}

type ListI32Msg struct {
	V []int32 `am:"v"`
}

type ListIntMsg struct {
	V []int `am:"v"`
}

type MapStrI64Msg struct {
	V map[string]int64 `am:"v"`
}

type MapStrStrMsg struct {
	V map[string]string `am:"v"`
}

type ByteArrMsg struct {
	V [4]byte `am:"v"`
}

type I32ArrMsg struct {
	V [3]int32 `am:"v"`
}

type EchoRequest struct {
	Text string `am:"text"`
}

type Empty struct{}

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

type Inner struct {
	Name  string `am:"name"`
	Count int32  `am:"count"`
}

type Nested struct {
	ID    int64            `am:"id"`
	Inner Inner            `am:"inner"`
	Opt   *Inner           `am:"opt"`
	List  []Inner          `am:"list"`
	ByKey map[string]Inner `am:"by_key"`
}

type Base struct {
	BaseID int64  `am:"base_id"`
	Kind   string `am:"kind"`
}
