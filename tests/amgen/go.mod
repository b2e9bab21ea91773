module amring.test/amgen

go 1.22
