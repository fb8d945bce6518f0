package media

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

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
