package media

// SetDecodeHook makes every decode call hook while it holds its slot, until
// the returned function restores the previous hook. Tests that use it must
// not run in parallel with others that decode.
func SetDecodeHook(hook func()) (restore func()) {
	prev := decodeHook
	decodeHook = hook
	return func() { decodeHook = prev }
}
