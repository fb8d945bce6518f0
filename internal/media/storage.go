package media

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/s3blob" // s3:// URLs: AWS S3 and S3-compatible storage
)

// OpenBucket opens media storage from a URL. A "file:///abs/dir" URL opens
// a directory on local disk, created if missing, with temporary files kept
// beside their targets so a volume mounted apart from /tmp still works;
// fileblob query parameters (e.g. "?metadata=skip") are honoured. An
// "s3://bucket?region=..." URL opens S3 or any S3-compatible store (add
// "&endpoint=https://host&use_path_style=true" for MinIO, Garage, R2...),
// with credentials from the usual AWS environment (AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, or an instance role). The caller closes the bucket.
func OpenBucket(ctx context.Context, rawURL string) (*blob.Bucket, error) {
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

// AvatarKey returns the key under which img is stored as userID's avatar:
// "avatars/<userID>/<first 16 hex digits of sha256(img.Data)>.<img.Ext>".
// The key is derived from the content, so it changes whenever the picture
// does and whatever is served from it can be cached forever. userID must be
// a server-issued ID, never raw user input, since it becomes a path segment.
func AvatarKey(userID string, img Image) string {
	sum := sha256.Sum256(img.Data)
	return fmt.Sprintf("%s%s.%s", AvatarPrefix(userID), hex.EncodeToString(sum[:8]), img.Ext)
}

// AvatarPrefix is the prefix of every key AvatarKey makes for userID: the
// folder of their profile pictures, past and present.
func AvatarPrefix(userID string) string { return "avatars/" + userID + "/" }
