module amring.test/go-peer

go 1.22

require github.com/adaptivemsg/adaptivemsg-go v0.0.0-20260101000000-25a4f57a0000
