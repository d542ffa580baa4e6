module conclave.dev/client

go 1.19

// The versions Debian 12 packages (what clients/go/ci.sh builds and tests with, in GOPATH
// mode). A module build takes these or newer; there is no go.sum yet: `go mod tidy` writes it.
require (
	google.golang.org/genproto v0.0.0-20200526211855-cb27e3aa2013
	google.golang.org/grpc v1.33.3
	google.golang.org/protobuf v1.28.1
)
