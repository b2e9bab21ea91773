module amring.test/go-peer

go 1.22

require github.com/adaptivemsg/adaptivemsg-go v0.0.0-20260408023417-25a4f572e382
