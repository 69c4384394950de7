package gitrepo

// LocalPath returns the directory of an existing repository, for processes
// of this server (built-in runners) that read it with git directly.
func (s *Store) LocalPath(repo string) (string, error) {
	return s.openRepoDir(repo)
}
