package conclave

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error is a failed call to Conclave: the gRPC status with its structured details decoded.
//
// Every call made through a Client (the generated service clients included, since Dial installs
// interceptors that convert their errors) and every helper of this package returns an *Error for
// a gRPC failure. Branch on Code and Reason, never on Message:
//
//	var cerr *conclave.Error
//	if errors.As(err, &cerr) && cerr.Reason == "RUN_NOT_FOUND" { ... }
//
// or, shorter, conclave.ReasonOf(err) == "RUN_NOT_FOUND".
//
// An *Error still carries its gRPC status: status.Code(err) and status.FromError(err) work on it.
type Error struct {
	// The gRPC status code.
	Code codes.Code
	// The status message, for people.
	Message string
	// The google.rpc.ErrorInfo reason, stable and machine-readable (e.g. INVALID_ARGUMENT,
	// RUN_NOT_FOUND, SHUTTING_DOWN); empty when the status carries no ErrorInfo.
	Reason string
	// The ErrorInfo domain (conclave.dev for errors raised by Conclave).
	Domain string
	// The ErrorInfo metadata (e.g. resource and id for RUN_NOT_FOUND); never nil.
	Metadata map[string]string
	// The google.rpc.BadRequest field violations of an INVALID_ARGUMENT error, in order.
	FieldViolations []FieldViolation

	status *status.Status
}

// FieldViolation is one bad field of a request: the field's path (e.g. input.txt) and a sentence
// saying what to fix.
type FieldViolation struct {
	Field       string
	Description string
}

// Error formats the error as "CODE (REASON): message".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Code.String())
	if e.Reason != "" {
		fmt.Fprintf(&b, " (%s)", e.Reason)
	}
	b.WriteString(": ")
	b.WriteString(e.Message)
	return b.String()
}

// GRPCStatus returns the gRPC status the error was made from, so that status.Code(err) and
// status.FromError(err) keep working.
func (e *Error) GRPCStatus() *status.Status {
	if e.status == nil {
		return status.New(e.Code, e.Message)
	}
	return e.status
}

// Is reports whether target is an *Error with the same code and, when target has one, the same
// reason: errors.Is(err, &conclave.Error{Code: codes.NotFound, Reason: "RUN_NOT_FOUND"}).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	return t.Code == e.Code && (t.Reason == "" || t.Reason == e.Reason)
}

// Violation returns the description of the field violation for field, and whether there is one.
func (e *Error) Violation(field string) (string, bool) {
	for _, v := range e.FieldViolations {
		if v.Field == field {
			return v.Description, true
		}
	}
	return "", false
}

// AsError converts an error returned by a gRPC call into an *Error, decoding its ErrorInfo and
// BadRequest details. It returns nil for nil, and for errors that carry no gRPC status (io.EOF,
// errors of the caller's own callbacks, ...). An *Error (or an error wrapping one) is returned
// as it is. A context.Canceled or context.DeadlineExceeded becomes CANCELLED or
// DEADLINE_EXCEEDED.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var cerr *Error
	if errors.As(err, &cerr) {
		return cerr
	}
	if errors.Is(err, io.EOF) {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			st = status.FromContextError(err)
		} else {
			return nil
		}
	}
	return fromStatus(st)
}

func fromStatus(st *status.Status) *Error {
	e := &Error{
		Code:     st.Code(),
		Message:  st.Message(),
		Metadata: map[string]string{},
		status:   st,
	}
	for _, detail := range st.Details() {
		switch d := detail.(type) {
		case *errdetails.ErrorInfo:
			if e.Reason == "" {
				e.Reason = d.GetReason()
				e.Domain = d.GetDomain()
				for k, v := range d.GetMetadata() {
					e.Metadata[k] = v
				}
			}
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				e.FieldViolations = append(e.FieldViolations, FieldViolation{
					Field:       v.GetField(),
					Description: v.GetDescription(),
				})
			}
		}
	}
	return e
}

// convert returns err as an *Error when it is a gRPC failure, and err unchanged otherwise.
func convert(err error) error {
	if err == nil {
		return nil
	}
	if cerr := AsError(err); cerr != nil {
		return cerr
	}
	return err
}

// ReasonOf returns the ErrorInfo reason of err ("" when err is nil or carries none).
func ReasonOf(err error) string {
	if cerr := AsError(err); cerr != nil {
		return cerr.Reason
	}
	return ""
}

// CodeOf returns the gRPC code of err: OK for nil, Unknown for an error that is no gRPC failure.
func CodeOf(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if cerr := AsError(err); cerr != nil {
		return cerr.Code
	}
	return codes.Unknown
}

// IsTransient reports whether err is a failure worth retrying after reconnecting: the server
// is unreachable or shutting down (UNAVAILABLE), or the connection broke under an open stream
// (the stream reset by the transport).
func IsTransient(err error) bool {
	cerr := AsError(err)
	if cerr == nil {
		return false
	}
	switch cerr.Code {
	case codes.Unavailable:
		return true
	case codes.Internal, codes.Unknown:
		// A connection that breaks under a stream surfaces as a reset stream, which grpc-go
		// reports as INTERNAL (or UNKNOWN) with a transport message, not as a server error.
		return cerr.Reason == "" && (strings.Contains(cerr.Message, "RST_STREAM") ||
			strings.Contains(cerr.Message, "transport is closing") ||
			strings.Contains(cerr.Message, "connection reset") ||
			strings.Contains(cerr.Message, "unexpected EOF"))
	}
	return false
}
