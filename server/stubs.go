package server

// Services whose features have not landed yet answer Unimplemented
// ("flock.v1.PostService.GetVideo is not implemented") through the
// Unimplemented handler their server type embeds. Every service has its
// own server type now.
