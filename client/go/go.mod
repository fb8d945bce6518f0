module github.com/flock-social/flock/client/go

go 1.26.0

require (
	connectrpc.com/connect v1.21.1
	github.com/flock-social/flock/gen/go v0.0.0-00010101000000-000000000000
	google.golang.org/protobuf v1.36.12
)

require (
	buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go v1.36.12-20260825204119-511051f7f437.2 // indirect
	google.golang.org/genproto/googleapis/api v0.0.0-20261110000943-09e21b237f2c // indirect
)

// Until gen/go is published (see docs/development.md#modules), a build of
// this module on its own takes the generated code from this checkout.
// Consumers ignore this line: their own go.mod decides.
replace github.com/flock-social/flock/gen/go => ../../gen/go
