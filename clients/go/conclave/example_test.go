package conclave_test

// The examples of clients/go/README.md, compiled with the tests so they cannot rot. (They have
// no Output comment, so `go test` compiles them without running them: they need a server.)

import (
	"context"
	"errors"
	"fmt"
	"log"

	"conclave.dev/client/conclave"
	"conclave.dev/client/conclavev1"

	"google.golang.org/protobuf/types/known/structpb"
)

func Example() {
	ctx := context.Background()
	c, err := conclave.Dial("127.0.0.1:50051") // or "https://conclave.example.com", conclave.WithToken(token)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// 1. Create a run.
	input, _ := structpb.NewStruct(map[string]interface{}{"text": "hello", "repeat": 3, "interval_ms": 300})
	run, err := c.Runs.CreateRun(ctx, &conclavev1.CreateRunRequest{Kind: "echo", Input: input})
	if err != nil {
		log.Fatal(err)
	}

	// 2. Follow its events to the end (reconnects and resumes by itself).
	err = c.FollowEvents(ctx, run.GetId(), conclave.FollowOptions{}, func(e *conclavev1.RunEvent) error {
		if sc := e.GetStateChanged(); sc != nil {
			fmt.Println(e.GetSequence(), sc.GetFrom(), "->", sc.GetTo())
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}

	// 3. Get it, with its output.
	run, err = c.Runs.GetRun(ctx, &conclavev1.GetRunRequest{Id: run.GetId()})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(run.GetState(), run.GetOutput())

	// 4. List runs, every page.
	err = conclave.Paginate(ctx, c.RunPages(&conclavev1.ListRunsRequest{Kind: "echo", PageSize: 100}),
		func(r *conclavev1.Run) error {
			fmt.Println(r.GetId(), r.GetState())
			return nil
		})
	if err != nil {
		log.Fatal(err)
	}

	// 5. Answer a run waiting for approval, or cancel one.
	_, err = c.Runs.SubmitDecision(ctx, &conclavev1.SubmitDecisionRequest{
		Id:       run.GetId(),
		Decision: &conclavev1.Decision{Outcome: &conclavev1.Decision_Approve{Approve: true}, Note: "looks good"},
	})
	if conclave.ReasonOf(err) == "RUN_NOT_WAITING" {
		fmt.Println("nothing to decide:", err)
	}
	_, err = c.Runs.CancelRun(ctx, &conclavev1.CancelRunRequest{Id: run.GetId(), Reason: "not needed"})
	if conclave.ReasonOf(err) == "RUN_ALREADY_FINISHED" {
		fmt.Println("too late:", err)
	}
}

func ExampleClient_FollowLogs() {
	ctx := context.Background()
	c, err := conclave.DialFromEnv() // $CONCLAVE_SERVER, $CONCLAVE_TOKEN
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	runID := "01a1fd14-c22f-74d5-87cd-9a01d658723d"

	var last uint64 // keep it to continue later with AfterSequence: last
	err = c.FollowLogs(ctx, runID, conclave.FollowOptions{
		AfterSequence: 0,
		OnReconnect: func(err error, lastSequence uint64) {
			log.Printf("stream broke (%v); resuming after line %d", err, lastSequence)
		},
	}, func(l *conclavev1.LogLine) error {
		fmt.Println(l.GetText())
		last = l.GetSequence()
		return nil // conclave.ErrStop stops early
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("the run finished; last line", last)
}

func ExampleClient_UploadFile() {
	ctx := context.Background()
	c, err := conclave.Dial("127.0.0.1:50051")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	runID := "01a1fd14-c22f-74d5-87cd-9a01d658723d"

	a, err := c.UploadFile(ctx, runID, "out/report.md", "report.md", &conclave.UploadOptions{
		Kind:      conclavev1.ArtifactKind_ARTIFACT_KIND_REPORT,
		MediaType: "text/markdown",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(a.GetName(), "version", a.GetVersion(), a.GetSha256())

	_, err = c.DownloadFile(ctx, &conclavev1.ArtifactRef{RunId: runID, Name: "out/report.md"}, "copy.md",
		&conclave.DownloadOptions{OnProgress: func(done, total uint64) { fmt.Printf("\r%d/%d", done, total) }})
	if err != nil {
		log.Fatal(err)
	}
}

func ExampleError() {
	ctx := context.Background()
	c, err := conclave.Dial("127.0.0.1:50051")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	input, _ := structpb.NewStruct(map[string]interface{}{"txt": "typo"})
	_, err = c.Runs.CreateRun(ctx, &conclavev1.CreateRunRequest{Kind: "echo", Input: input})
	var cerr *conclave.Error
	if errors.As(err, &cerr) {
		fmt.Println(cerr.Code, cerr.Reason) // InvalidArgument INVALID_ARGUMENT
		for _, v := range cerr.FieldViolations {
			fmt.Println(v.Field, v.Description) // input.txt is not a field of this kind; ...
		}
	}
}
