// Package bucket opens the storage behind Flock's media (avatars, videos):
// a local directory or an S3-compatible store. It is apart from package
// media so that media's image code, and its fuzz target, build without
// the cloud storage drivers (.ci/run).
package bucket

import (
	"context"
	"fmt"
	"net/url"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/s3blob" // s3:// URLs: AWS S3 and S3-compatible storage
)

// Open opens media storage from a URL. A "file:///abs/dir" URL opens
// a directory on local disk, created if missing, with temporary files kept
// beside their targets so a volume mounted apart from /tmp still works;
// fileblob query parameters (e.g. "?metadata=skip") are honoured. An
// "s3://bucket?region=..." URL opens S3 or any S3-compatible store (add
// "&endpoint=https://host&use_path_style=true" for MinIO, Garage, R2...),
// with credentials from the usual AWS environment (AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, or an instance role). The caller closes the bucket.
func Open(ctx context.Context, rawURL string) (*blob.Bucket, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("open media bucket: parse url: %w", err)
	}
	var b *blob.Bucket
	if u.Scheme == fileblob.Scheme {
		opener := &fileblob.URLOpener{Options: fileblob.Options{CreateDir: true, NoTempDir: true}}
		b, err = opener.OpenBucketURL(ctx, u)
	} else {
		b, err = blob.OpenBucket(ctx, rawURL)
	}
	if err != nil {
		return nil, fmt.Errorf("open media bucket %s://%s: %w", u.Scheme, u.Host, err)
	}
	return b, nil
}
