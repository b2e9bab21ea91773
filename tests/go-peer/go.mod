module amring.test/go-peer

go 1.22

require github.com/adaptivemsg/adaptivemsg-go v0.0.0-20260408023417-25a4f572e382

require (
	github.com/vmihailenco/msgpack/v5 v5.4.1 // indirect
	github.com/vmihailenco/tagparser/v2 v2.0.0 // indirect
)

// The Go source of the amgen-go fixture (tests/amgen), for cmd/amgen-echo.
require amring.test/amgen v0.0.0-00010101000000-000000000000

replace amring.test/amgen => ../amgen
