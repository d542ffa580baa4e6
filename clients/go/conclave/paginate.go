package conclave

import (
	"context"
	"errors"

	"conclave.dev/client/conclavev1"

	"google.golang.org/protobuf/proto"
)

// PageFunc fetches one page: the items of the page for pageToken ("" for the first page) and the
// token of the next page ("" after the last page).
type PageFunc[T any] func(ctx context.Context, pageToken string) (items []T, nextPageToken string, err error)

// Paginate calls fn for every item of every page, fetching pages one at a time until the last
// one, ctx ends, or fn returns an error (ErrStop ends early with a nil error). Any list call
// fits:
//
//	err := conclave.Paginate(ctx, func(ctx context.Context, token string) ([]*conclavev1.Debate, string, error) {
//		resp, err := c.Debates.ListDebates(ctx, &conclavev1.ListDebatesRequest{PageToken: token})
//		return resp.GetDebates(), resp.GetNextPageToken(), err
//	}, func(d *conclavev1.Debate) error { fmt.Println(d.GetId()); return nil })
func Paginate[T any](ctx context.Context, page PageFunc[T], fn func(T) error) error {
	token := ""
	for {
		if err := ctx.Err(); err != nil {
			return convert(err)
		}
		items, next, err := page(ctx, token)
		if err != nil {
			return convert(err)
		}
		for _, item := range items {
			if err := fn(item); err != nil {
				if errors.Is(err, ErrStop) {
					return nil
				}
				return err
			}
		}
		if next == "" {
			return nil
		}
		token = next
	}
}

// Collect returns every item of every page.
func Collect[T any](ctx context.Context, page PageFunc[T]) ([]T, error) {
	var all []T
	err := Paginate(ctx, page, func(item T) error {
		all = append(all, item)
		return nil
	})
	return all, err
}

// RunPages lists runs with req's filters and page size, one page per call; req is not modified.
func (c *Client) RunPages(req *conclavev1.ListRunsRequest) PageFunc[*conclavev1.Run] {
	return func(ctx context.Context, token string) ([]*conclavev1.Run, string, error) {
		r := &conclavev1.ListRunsRequest{}
		if req != nil {
			r = proto.Clone(req).(*conclavev1.ListRunsRequest)
		}
		r.PageToken = token
		resp, err := c.Runs.ListRuns(ctx, r)
		return resp.GetRuns(), resp.GetNextPageToken(), err
	}
}

// ArtifactPages lists artifacts with req's filters and page size, one page per call; req is not
// modified.
func (c *Client) ArtifactPages(req *conclavev1.ListArtifactsRequest) PageFunc[*conclavev1.Artifact] {
	return func(ctx context.Context, token string) ([]*conclavev1.Artifact, string, error) {
		r := &conclavev1.ListArtifactsRequest{}
		if req != nil {
			r = proto.Clone(req).(*conclavev1.ListArtifactsRequest)
		}
		r.PageToken = token
		resp, err := c.Artifacts.ListArtifacts(ctx, r)
		return resp.GetArtifacts(), resp.GetNextPageToken(), err
	}
}

// ListAllRuns returns every run matching req's filters, fetching as many pages as needed.
func (c *Client) ListAllRuns(ctx context.Context, req *conclavev1.ListRunsRequest) ([]*conclavev1.Run, error) {
	return Collect(ctx, c.RunPages(req))
}
