package gitrepo

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by Store wraps one of these (or a
// context error) so callers can map them to HTTP statuses with errors.Is.
var (
	// ErrInvalidPath reports a repository path or in-repository file path
	// that fails validation (traversal, bad characters, reserved suffix...).
	ErrInvalidPath = errors.New("gitrepo: invalid path")
	// ErrRepoNotFound reports that the repository does not exist on disk.
	ErrRepoNotFound = errors.New("gitrepo: repository not found")
	// ErrRepoExists reports that Create or Rename would overwrite a repository.
	ErrRepoExists = errors.New("gitrepo: repository already exists")

	// ErrInvalidRef reports a ref name that cannot name a branch or tag.
	ErrInvalidRef = errors.New("gitrepo: invalid ref")
	// ErrRefIsSHA reports that ResolveRef was given a commit SHA instead of a
	// name; pipelines must be triggered for a branch or tag.
	ErrRefIsSHA = fmt.Errorf("%w: ref is a commit SHA, not a branch or tag", ErrInvalidRef)
	// ErrRefIsHEAD reports that ResolveRef was given "HEAD", which is ambiguous
	// for a pipeline (it names no branch or tag).
	ErrRefIsHEAD = fmt.Errorf("%w: HEAD is not a branch or tag", ErrInvalidRef)
	// ErrRefNotFound reports a well-formed ref that does not exist.
	ErrRefNotFound = errors.New("gitrepo: ref not found")

	// ErrInvalidSHA reports a value that is not a full 40-hex object id.
	ErrInvalidSHA = errors.New("gitrepo: invalid commit SHA")
	// ErrCommitNotFound reports a well-formed SHA with no commit behind it.
	ErrCommitNotFound = errors.New("gitrepo: commit not found")
	// ErrFileNotFound reports a path that is absent at the commit or is not a
	// regular file (directory, submodule, symlink).
	ErrFileNotFound = errors.New("gitrepo: file not found")
	// ErrFileTooLarge reports a blob larger than the configured read cap.
	ErrFileTooLarge = errors.New("gitrepo: file too large")
)
