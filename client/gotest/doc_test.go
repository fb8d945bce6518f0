// Package gotest tests the Go SDK (client/go) against real Flock servers
// started in process with internal/testutil. It lives in the server module,
// not in the SDK module, so that the SDK module requires nothing of the
// server: a consumer of the SDK gets Connect and protobuf only. See
// docs/sdk-go.md#how-it-is-tested.
package gotest
